// The one way this dashboard talks to the server: JSON in, JSON out, CSRF header on writes.

import { url } from './base.js';

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status; // 0: the server could not be reached
    this.body = body || {};
  }
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.getAttribute('content') : '';
}

function describe(status, body) {
  if (status === 401 || status === 403) {
    return 'You are not logged in (or the login expired): open the login URL that '
      + '"controlplane serve" printed.';
  }
  if (body && body.message) return body.message;
  return `The server answered ${status}.`;
}

/**
 * Call the API (path: '/api/…', below the mount point). Options: method, body (sent as JSON),
 * async (adds Prefer: respond-async).
 * Resolves to the parsed JSON; rejects with ApiError (status 0 when unreachable).
 */
export async function api(path, { method = 'GET', body, async: respondAsync = false } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin' };
  if (method !== 'GET') {
    headers['X-CSRF-Token'] = csrfToken();
    if (respondAsync) headers.Prefer = 'respond-async';
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let response;
  try {
    response = await fetch(url(path), init);
  } catch {
    throw new ApiError(0, null,
      'The server could not be reached. Is "controlplane serve" still running?');
  }
  let data = null;
  if ((response.headers.get('Content-Type') || '').includes('json')) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) throw new ApiError(response.status, data, describe(response.status, data));
  return data;
}
