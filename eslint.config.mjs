// eslint (flat config) for the dashboard's ES modules and their unit tests.
import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', 'build/', 'dist/', '.venv/'] },
  js.configs.recommended,
  {
    files: ['src/ui/web/static/**/*.js'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: globals.browser },
    rules: {
      eqeqeq: ['error', 'smart'],
      'no-var': 'error',
      'prefer-const': 'error',
      'no-implicit-globals': 'error',
    },
  },
  {
    // a service worker (PWA), wherever it lands under static/
    files: ['src/ui/web/static/**/sw.js', 'src/ui/web/static/**/service-worker.js'],
    languageOptions: { globals: globals.serviceworker },
  },
  {
    files: ['src/ui/web/static/js/ansi.js'],
    rules: { 'no-control-regex': 'off' }, // it matches terminal escape codes on purpose
  },
  {
    files: ['tests/js/**/*.mjs', 'eslint.config.mjs'],
    languageOptions: { ecmaVersion: 2022, sourceType: 'module', globals: globals.node },
  },
];
