// A pod's recording (asciicast v2, GET /api/v1/pods/{id}/recording) played in the browser with
// asciinema-player (npm, bundled: nothing is fetched from outside): play/pause, seek, speed,
// and markers where input control changed hands (pod.terminal.take events in the audit log).
// The player's terminal is WebAssembly, which the appliance's CSP allows ('wasm-unsafe-eval':
// compiling wasm, not evaluating JavaScript); its styles are classes from player.css.
import * as AsciinemaPlayer from 'asciinema-player';
import { api, AuditEvent, errorText, toError } from '../api';
import { append, clear, h } from '../dom';

type Player = ReturnType<typeof AsciinemaPlayer.create>;

const SPEEDS = [0.5, 1, 2, 4, 8];

/** Fill box with a player for pod id's recording; resolves with a function that disposes it. */
export async function openPlayer(box: HTMLElement, id: string, onError: (m: string) => void): Promise<() => void> {
  clear(box);
  const status = h('span', { class: 'muted small', id: 'player-status', role: 'status' }, 'Loading the recording…');
  const screen = h('div', { class: 'player-box', id: 'player' });
  const speed = h('select', { id: 'player-speed', 'aria-label': 'Playback speed', class: 'select-small' },
    SPEEDS.map((s) => h('option', { value: String(s), selected: s === 1 }, s + '×')));
  const playBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'player-play' }, 'Play');
  const endBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'player-end', title: 'Seek to the end' }, 'End');
  const startBtn = h('button', { type: 'button', class: 'btn btn-small', id: 'player-start', title: 'Seek to the start' }, 'Start');
  append(box, [
    h('div', { class: 'toolbar player-toolbar' },
      h('h2', null, 'Recording'),
      h('div', { class: 'toolbar-right' }, status, startBtn, playBtn, endBtn, h('label', { class: 'small', for: 'player-speed' }, 'Speed'), speed)),
    screen,
  ]);
  let player: Player | null = null;
  let disposed = false;
  let text = '';
  try {
    const res = await fetch(`/api/v1/pods/${encodeURIComponent(id)}/recording`, { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw await toError(res);
    text = await res.text();
  } catch (e) {
    status.textContent = '';
    onError('The recording cannot be loaded: ' + errorText(e));
    return () => {};
  }
  if (disposed) return () => {};
  const markers = await controlMarkers(id, text).catch(() => []);
  const make = (rate: number, at?: number) => {
    player?.dispose();
    clear(screen);
    player = AsciinemaPlayer.create({ data: text }, screen, {
      fit: 'width', controls: true, speed: rate, idleTimeLimit: 2, markers, startAt: at, terminalFontFamily: 'ui-monospace, "DejaVu Sans Mono", monospace',
    });
    player.addEventListener('play', () => { playBtn.textContent = 'Pause'; status.textContent = 'Playing'; });
    player.addEventListener('playing', () => { playBtn.textContent = 'Pause'; status.textContent = 'Playing'; });
    player.addEventListener('pause', () => { playBtn.textContent = 'Play'; status.textContent = 'Paused'; });
    player.addEventListener('ended', () => { playBtn.textContent = 'Play'; status.textContent = 'Ended'; });
  };
  make(1);
  status.textContent = markers.length ? `Ready · ${markers.length} control change${markers.length === 1 ? '' : 's'} marked` : 'Ready';
  playBtn.addEventListener('click', () => {
    if (!player) return;
    if (playBtn.textContent === 'Pause') void player.pause();
    else void player.play();
  });
  endBtn.addEventListener('click', async () => {
    if (!player) return;
    const d = (await player.getDuration()) || 0;
    await player.seek(d);
    status.textContent = 'At the end';
  });
  startBtn.addEventListener('click', async () => {
    if (!player) return;
    await player.seek(0);
    status.textContent = 'At the start';
  });
  // The speed is fixed when a player is made: remake it at the same place.
  speed.addEventListener('change', async () => {
    if (!player) return;
    const at = (await player.getCurrentTime()) || 0;
    make(Number(speed.value), at);
    void player!.play();
  });
  return () => {
    disposed = true;
    player?.dispose();
    player = null;
    clear(box);
  };
}

/** Seconds into the recording where someone took input control, labelled with who. */
async function controlMarkers(id: string, cast: string): Promise<[number, string][]> {
  const head = JSON.parse(cast.slice(0, cast.indexOf('\n')) || '{}');
  const t0 = Number(head.timestamp || 0) * 1000;
  if (!t0) return [];
  const r = await api<{ events: AuditEvent[] }>('GET', `/audit?action=pod.terminal.take&since=${t0}&limit=1000`);
  return r.events
    .filter((e) => e.target === 'pod:' + id && e.result === 'ok')
    .map((e): [number, string] => [Math.max(0, (e.time_ms - t0) / 1000), `${(e.actor || '').replace(/^user:/, '')} took control`]);
}
