// Coalesced delivery of live envelopes: under a burst each element is repainted at most once
// per frame. Envelopes that carry a whole snapshot drawn as it is (progress, executor state) are
// "latest wins" per type and run: the first of a frame is delivered at once, later ones wait
// for the frame's end, where only the newest of each is delivered. Once something waits,
// everything after it waits too (order is kept). Frames are requestAnimationFrame, with a
// timer as a fallback (a hidden tab gets no animation frames).

// (metrics:update and ledger:synced are not here: their listeners refetch, debounced.)
export const LATEST_WINS = new Set(['run:progress', 'executor:state']);
export const FALLBACK_MS = 250;

/** The coalescing key of an envelope, or null when every one of its kind matters. */
export function keyOf(envelope) {
  return LATEST_WINS.has(envelope.type) ? `${envelope.type} ${envelope.run_id ?? ''}` : null;
}

/**
 * A coalescer calling deliver(envelope) for what push() gets. Returns {push, flush, stats}:
 * stats counts delivered and superseded envelopes and the frames that delivered some.
 */
export function createCoalescer(deliver, {
  frame = (fn) => requestAnimationFrame(fn), fallbackMs = FALLBACK_MS, key = keyOf,
} = {}) {
  let queue = []; // envelopes waiting for the frame's end; null where a newer one replaced it
  const waiting = new Map(); // key -> index in queue
  let thisFrame = new Set(); // keys delivered during the current frame
  let frames = 0; // frames scheduled so far
  let token = 0; // the scheduled frame's number (0: none)
  let timer = null;
  const stats = { delivered: 0, superseded: 0, frames: 0 };

  function send(envelope) {
    stats.delivered += 1;
    deliver(envelope);
  }

  function schedule() {
    if (token) return;
    frames += 1;
    token = frames;
    const mine = token;
    frame(() => endFrame(mine));
    timer = setTimeout(() => endFrame(mine), fallbackMs);
  }

  function endFrame(which) {
    if (which !== token) return; // the other of rAF and the timer came first, or flush()
    token = 0;
    clearTimeout(timer);
    const batch = queue;
    queue = [];
    waiting.clear();
    thisFrame = new Set();
    if (batch.length) stats.frames += 1;
    for (const envelope of batch) {
      if (!envelope) continue;
      const k = key(envelope);
      if (k !== null) thisFrame.add(k);
      send(envelope);
    }
    if (thisFrame.size) schedule(); // the next frame may deliver these keys again
  }

  function push(envelope) {
    const k = key(envelope);
    if (!queue.length && (k === null || !thisFrame.has(k))) {
      if (k !== null) {
        thisFrame.add(k);
        schedule();
      }
      send(envelope);
      return;
    }
    if (k !== null && waiting.has(k)) {
      queue[waiting.get(k)] = null;
      stats.superseded += 1;
    }
    if (k !== null) waiting.set(k, queue.length);
    queue.push(envelope);
    schedule();
  }

  /** Deliver what waits now (a transport change, a test). */
  function flush() {
    if (token) endFrame(token);
  }

  return { push, flush, stats };
}
