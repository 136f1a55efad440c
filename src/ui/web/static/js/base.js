// Where the dashboard is mounted: '' for `controlplane serve`, or a host app's url_prefix
// (e.g. '/ops'), read once from <meta name="controlplane-base">. Every URL of ours goes
// through url(), so the pages work under any prefix.

let base = null;

/** The mount point: '' or a path without a trailing slash. */
export function basePath() {
  if (base === null) {
    const meta = document.querySelector('meta[name="controlplane-base"]');
    base = (meta ? meta.getAttribute('content') || '' : '').replace(/\/+$/, '');
  }
  return base;
}

/** One of our absolute paths ('/api/…', '/runs/…') under the mount point. */
export function url(path) {
  return path.startsWith('/') ? basePath() + path : path;
}
