// One pod's terminal WebSocket (wss://HOST/api/v1/pods/{id}/terminal?offset=N), with
// reconnection. Binary frames are terminal bytes starting at the offset the server announces in
// "hello"; `offset` always names the next byte expected, so a reconnect asks for exactly what is
// missing (?offset=offset) and nothing is shown twice. Reconnects back off 0.5 s doubling to
// 15 s (with jitter) and stop once the pod has exited or the page closes the connection.

export interface Hello {
  type: 'hello';
  pod: string;
  offset: number;
  ring_start: number;
  ring_end: number;
  state: string;
  you: string | number;
  control: string | number | null;
  control_user: string | null;
  can_input: boolean;
  cols: number;
  rows: number;
}

export interface Handlers {
  hello(h: Hello, requested: number): void;
  bytes(data: Uint8Array): void;
  lagged(skippedTo: number, skipped: number): void;
  control(holder: string | number | null, user: string | null): void;
  resize(cols: number, rows: number): void;
  exit(state: string, code: number | null): void;
  error(message: string): void;
  /** Connection state for the status line: "connecting", "live", "retry" (with seconds), "ended". */
  status(state: 'connecting' | 'live' | 'retry' | 'ended', detail?: number): void;
}

export class TermConnection {
  offset: number;
  private ws: WebSocket | null = null;
  private closed = false;
  private exited = false;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private gotHello = false;

  constructor(private pod: string, startOffset: number, private on: Handlers) {
    this.offset = startOffset;
  }

  connect(): void {
    if (this.closed) return;
    this.on.status('connecting');
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/api/v1/pods/${encodeURIComponent(this.pod)}/terminal?offset=${this.offset}`;
    const requested = this.offset;
    let ws: WebSocket;
    try {
      ws = new WebSocket(url);
    } catch {
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.gotHello = false;
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      if (typeof ev.data !== 'string') {
        const data = new Uint8Array(ev.data as ArrayBuffer);
        this.offset += data.length;
        this.on.bytes(data);
        return;
      }
      let m: any;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      switch (m.type) {
        case 'hello':
          this.gotHello = true;
          this.attempt = 0;
          this.offset = Number(m.offset) || 0;
          this.on.status('live');
          this.on.hello(m as Hello, requested);
          break;
        case 'lagged': {
          const to = Number(m.skipped_to) || 0;
          const skipped = Math.max(0, to - this.offset);
          this.offset = Math.max(this.offset, to);
          this.on.lagged(to, skipped);
          break;
        }
        case 'control':
          this.on.control(m.holder ?? null, m.user ?? null);
          break;
        case 'resize':
          this.on.resize(Number(m.cols), Number(m.rows));
          break;
        case 'exit':
          this.exited = true;
          this.on.exit(String(m.state || 'exited'), m.code === undefined || m.code === null ? null : Number(m.code));
          break;
        case 'error':
          this.on.error(String(m.message || 'the terminal reported an error'));
          break;
      }
    };
    ws.onclose = () => {
      if (ws !== this.ws) return;
      this.ws = null;
      if (this.closed) return;
      if (this.exited) {
        this.on.status('ended');
        return;
      }
      this.retry();
    };
  }

  private retry(): void {
    if (this.closed) return;
    const base = Math.min(15000, 500 * 2 ** this.attempt);
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this.on.status('retry', Math.max(1, Math.round(delay / 1000)));
    this.timer = setTimeout(() => {
      this.timer = null;
      this.connect();
    }, delay);
  }

  /** Reconnect now (the "Retry now" button). */
  reconnectNow(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.ws) this.connect();
  }

  get connected(): boolean {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.gotHello;
  }

  sendJSON(msg: unknown): boolean {
    if (!this.connected) return false;
    this.ws!.send(JSON.stringify(msg));
    return true;
  }

  sendBytes(data: Uint8Array): boolean {
    if (!this.connected) return false;
    this.ws!.send(data);
    return true;
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
  }
}
