// One subscription to wss://HOST/api/v1/events for a page: each text frame parsed as JSON (audit
// records {seq, actor, action, target, details, ...} and the channels' {"type": ...} messages)
// and handed to the page; reconnects with backoff (1 s doubling to 15 s) until stopped. The
// page learns when the stream is live (onLive(true)) and when it dropped (onLive(false)), so it
// can poll only while it is down and reload what it may have missed when it comes back.
export interface LiveEvent {
  seq?: number;
  actor?: string;
  action?: string;
  target?: string;
  result?: string;
  details?: Record<string, unknown>;
  type?: string;
  [k: string]: unknown;
}

export function subscribeEvents(onEvent: (e: LiveEvent) => void, onLive?: (live: boolean) => void): () => void {
  let ws: WebSocket | null = null;
  let stopped = false;
  let delay = 1000;
  let timer: ReturnType<typeof setTimeout> | null = null;
  const connect = () => {
    if (stopped) return;
    try {
      ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/events`);
    } catch {
      timer = setTimeout(connect, delay = Math.min(delay * 2, 15000));
      return;
    }
    ws.onopen = () => { delay = 1000; onLive?.(true); };
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string') return;
      let e: LiveEvent;
      try { e = JSON.parse(m.data); } catch { return; }
      if (e && typeof e === 'object') onEvent(e);
    };
    ws.onclose = () => {
      ws = null;
      if (stopped) return;
      onLive?.(false);
      timer = setTimeout(connect, delay = Math.min(delay * 2, 15000));
    };
  };
  connect();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    ws?.close();
  };
}
