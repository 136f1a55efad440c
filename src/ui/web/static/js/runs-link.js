// Links to the runs list with its filters in the address (the same parameters its form uses).

import { url } from './base.js';

/** The runs list filtered by `filters` ({since, until, status, subtype, ...}; empty ones left out). */
export function runsHref(filters) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(filters || {})) {
    if (value) params.set(name, value);
  }
  const query = params.toString();
  return url(query ? `/?${query}` : '/');
}

/** A chart's `link(day, status)`: the runs of that UTC day (and status), in `subtype` if set. */
export function dayLinker(subtype = '') {
  return (day, status) => runsHref({ since: day, until: day, status, subtype });
}
