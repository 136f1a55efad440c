// Follow one run: its state and events from the API, then live, with a polling fallback.
//
// Live output arrives before the first fetch may answer: it is held, then only events
// newer than the fetched ones are passed on (events are numbered per run: seq).

import { api } from './api.js';
import { isAutoRefreshOn, onRefresh } from './autorefresh.js';
import { isFinal, statusRank } from './format.js';
import { connectionState, on } from './live.js';

const POLL_MS = 2000;

/**
 * handlers: onRun(run), onEvents(events), onProgress({done, total}), onError(error).
 * Returns {stop(), run()}.
 */
export function followRun(runId, handlers) {
  let current = null;
  let lastSeq = 0;
  let held = []; // live output that arrived while a fetch was in flight
  let fetching = 0;
  let timer = null;
  const stops = [];
  const path = `/api/runs/${encodeURIComponent(runId)}`;

  const setRun = (run) => {
    if (!run) return;
    if (current && statusRank(run.status) < statusRank(current.status)) return;
    current = { ...(current || {}), ...run };
    handlers.onRun?.(current);
  };

  const takeEvents = (events) => {
    const fresh = events.filter((e) => typeof e.seq !== 'number' || e.seq > lastSeq);
    for (const event of fresh) if (typeof event.seq === 'number') lastSeq = Math.max(lastSeq, event.seq);
    if (!fresh.length) return;
    handlers.onEvents?.(fresh);
    const progress = fresh.filter((e) => e.type === 'run:progress').pop();
    if (progress) handlers.onProgress?.(progress.data);
  };

  // Live output is held while a fetch is in flight, then applied after what the fetch
  // returned: otherwise newer live lines would move lastSeq past the fetched ones.
  const fetched = async (load) => {
    fetching += 1;
    try {
      await load();
    } catch (error) {
      handlers.onError?.(error);
    } finally {
      fetching -= 1;
      if (!fetching) {
        const waiting = held;
        held = [];
        takeEvents(waiting);
      }
    }
  };

  const fetchAll = () => fetched(async () => {
    const answer = await api(path);
    setRun(answer.run);
    takeEvents(answer.events || []);
  });

  const fetchNew = () => (!current?.run_id ? fetchAll() : fetched(async () => {
    const answer = await api(`${path}/events?after=${lastSeq}`);
    takeEvents(answer.events || []);
    if (isFinal(answer.status) && !isFinal(current?.status)) setRun((await api(path)).run);
    else setRun({ status: answer.status });
  }));

  const live = (envelope) => {
    if (envelope.run_id !== runId) return;
    const { type, data } = envelope;
    if (type === 'run:output') {
      const event = { seq: data.seq, type, data: { stream: data.stream, line: data.line } };
      if (fetching) held.push(event);
      else takeEvents([event]);
    } else if (type === 'run:progress') {
      handlers.onProgress?.(data);
    } else {
      setRun(data); // queued, started, completed: the run.json
    }
  };

  for (const type of ['run:queued', 'run:started', 'run:output', 'run:progress', 'run:completed']) {
    stops.push(on(type, live));
  }
  stops.push(on('resync', fetchNew));
  stops.push(onRefresh(fetchNew));

  // Poll while the live connection is down (auto-refresh polls on its own timer).
  const poll = () => {
    timer = setTimeout(async () => {
      if (!isFinal(current?.status) && connectionState() !== 'connected' && !isAutoRefreshOn()
          && !fetching) {
        await fetchNew();
      }
      poll();
    }, POLL_MS);
  };
  poll();
  fetchAll();

  return {
    run: () => current,
    stop() {
      clearTimeout(timer);
      for (const stop of stops) stop();
    },
  };
}
