// A pod's live terminal: xterm.js over the terminal WebSocket. Everyone sees the same output;
// one viewer at a time holds control (types, and its window size becomes the pod's size).
// The screen and the offset it was drawn up to are kept in sessionStorage per pod, so a reload
// or coming back to the page redraws at once and resumes with ?offset=<that offset>; without a
// saved screen the appliance replays its whole ring (offset 0).
// Beside the terminal: what the pod is (program, repository, branch, base, limits, network,
// runner, owner, runtime); a failed pod shows its reason in a red banner; an ended pod with a
// recording plays it in the browser (asciinema-player, see player.ts). Below the terminal, a
// prompt box sends text to the running program as one bracketed paste and Enter
// (POST /api/v1/pods/{id}/prompt: the input holder, the pod's starter when nobody holds control,
// or an admin; the appliance decides and says why not).
// The egress policy is a
// fact (host in red); the pod's egress decisions (pod.egress audit events: connect, close,
// refused) are listed below the facts, live over /api/v1/events; then its bindings (issue 13,
// bindings.ts: both ways, live, with Accept / Reject / End for who may control the pod).
import { Terminal } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { SerializeAddon } from '@xterm/addon-serialize';
import { api, ApiError, AuditEvent, canShare, errorText, Pod, POD_STATE, podEnded, podLocked, podLockedWhy, ROLE_ADMIN, ROLE_MEMBER, Runner } from '../api';
import { prune as pruneCspStyles } from '../csp-styles';
import { append, badge, clear, confirmDialog, dateTime, exitWords, h, notice } from '../dom';
import type { Ctx } from '../main';
import { commandLabel, downloadRecording, stateDetail, who as whoName } from './pods';
import { actorText, editing, loadPeople, named, renameButton } from '../names';
import { openPlayer } from './player';
import { Hello, TermConnection } from '../term/connection';
import { agentBadge, AgentStateEvent } from '../agentstate';
import { bindingsPanel } from './bindings';

const SAVE_KEY = (pod: string) => 'airmesh.term.' + pod;
const SAVE_SCROLLBACK = 1000; // lines kept in the saved screen

interface Saved {
  offset: number;
  snapshot: string;
}

function loadSaved(pod: string): Saved | null {
  try {
    const s = JSON.parse(sessionStorage.getItem(SAVE_KEY(pod)) || 'null');
    return s && typeof s.offset === 'number' && typeof s.snapshot === 'string' ? s : null;
  } catch {
    return null;
  }
}

export function terminalPage(ctx: Ctx, id: string): () => void {
  ctx.title('Pod ' + id);
  const canWrite = ctx.who.role >= ROLE_MEMBER;
  const enc = new TextEncoder();
  let pod: Pod | null = null;
  let hello: Hello | null = null;
  let holder: string | number | null = null;
  let holderUser: string | null = null;
  let ended = false;
  let agentMsg = ''; // the last agent-state message heard live (the badge's tooltip)
  let disposed = false;

  // --- layout ---------------------------------------------------------------------------------
  const stateBox = h('span', { class: 'pod-state' });
  const meta = h('div', { class: 'pod-meta' });
  const nameBox = h('div', { class: 'name-line pod-name-line' });
  const status = h('span', { class: 'conn', id: 'term-status', role: 'status' });
  const controlText = h('span', { class: 'control-text', id: 'control-holder' });
  const controlBtn = h('button', { type: 'button', class: 'btn', id: 'control-btn', disabled: true }, 'Take control');
  const stopBtn = h('button', { type: 'button', class: 'btn btn-danger-outline', id: 'stop-pod', hidden: true }, 'Stop pod');
  const shareBtn = h('button', { type: 'button', class: 'btn', id: 'share-pod', hidden: true, 'aria-pressed': 'false' }, 'Share');
  const recBtn = h('button', { type: 'button', class: 'btn', id: 'download-recording', hidden: true }, 'Download recording');
  const playBtn = h('button', { type: 'button', class: 'btn', id: 'play-recording', hidden: true }, 'Play recording');
  const reviewLink = h('a', { class: 'btn', id: 'review-link', href: '#/pods/' + encodeURIComponent(id) + '/review' }, 'Review'); // review.ts
  const factsBtn = h('button', { type: 'button', class: 'btn', id: 'pod-facts-toggle', 'aria-controls': 'pod-facts' }, 'Details');
  const notices = h('div', { class: 'messages term-notices' });
  const banner = h('div', { class: 'banner-failed', id: 'pod-failed', role: 'alert', hidden: true });
  const facts = h('aside', { class: 'pod-facts', id: 'pod-facts', 'aria-label': 'About this pod' });
  const playerBox = h('section', { class: 'player-panel', id: 'player-panel', hidden: true, 'aria-label': 'Recording' });
  const termBox = h('div', { class: 'term-box', id: 'terminal' });
  const typeHint = h('div', { class: 'type-hint', hidden: true }, 'Take control to type into this terminal.');
  const promptText = h('textarea', { id: 'prompt-text', rows: 2, placeholder: 'Send a prompt to the agent (Ctrl+Enter sends)', spellcheck: 'false', 'aria-label': 'Prompt' });
  const promptBtn = h('button', { type: 'submit', class: 'btn btn-primary', id: 'prompt-send' }, 'Send prompt');
  const promptBox = h('form', { class: 'prompt-box', id: 'prompt-box', hidden: true, 'aria-label': 'Send a prompt' }, promptText, promptBtn);
  append(ctx.main, [
    h('div', { class: 'term-head' },
      h('div', { class: 'term-info' }, h('a', { href: '#/pods', class: 'back' }, '← Pods'), stateBox, nameBox, meta),
      h('div', { class: 'term-actions' }, status, controlText, controlBtn, reviewLink, playBtn, recBtn, factsBtn, shareBtn, stopBtn)),
    banner,
    notices,
    playerBox,
    h('div', { class: 'pod-layout' }, h('div', { class: 'term-col' }, h('div', { class: 'term-wrap' }, termBox, typeHint), promptBox), facts),
  ]);
  factsBtn.addEventListener('click', () => facts.classList.toggle('pod-facts-open'));
  ctx.main.classList.add('main-terminal');

  const say = (kind: 'error' | 'info' | 'ok' | 'warn', text: string | Node, key?: string) => {
    if (key) notices.querySelector(`[data-key="${key}"]`)?.remove();
    const n = notice(kind, text, () => {});
    if (key) n.dataset.key = key;
    notices.appendChild(n);
    return n;
  };

  // --- the terminal ---------------------------------------------------------------------------
  const term = new Terminal({
    fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace',
    fontSize: 14,
    scrollback: 5000,
    cursorBlink: true,
    theme: {
      background: '#0d1117', foreground: '#e6edf3', cursor: '#e6edf3', selectionBackground: '#264f78',
      black: '#484f58', red: '#ff7b72', green: '#3fb950', yellow: '#d29922', blue: '#58a6ff', magenta: '#bc8cff', cyan: '#39c5cf', white: '#b1bac4',
      brightBlack: '#6e7681', brightRed: '#ffa198', brightGreen: '#56d364', brightYellow: '#e3b341', brightBlue: '#79c0ff', brightMagenta: '#d2a8ff', brightCyan: '#56d4dd', brightWhite: '#ffffff',
    },
  });
  const fit = new FitAddon();
  const serialize = new SerializeAddon();
  term.loadAddon(fit);
  term.loadAddon(serialize);
  term.open(termBox);

  // Bytes xterm has parsed so far: the saved screen always matches its offset.
  let drawnOffset = 0;
  const saved = loadSaved(id);
  if (saved) {
    term.write(saved.snapshot);
    drawnOffset = saved.offset;
  }

  let saveTimer: ReturnType<typeof setTimeout> | null = null;
  const save = () => {
    if (saveTimer) clearTimeout(saveTimer);
    saveTimer = null;
    if (disposed) return;
    try {
      const v: Saved = { offset: drawnOffset, snapshot: serialize.serialize({ scrollback: SAVE_SCROLLBACK }) };
      sessionStorage.setItem(SAVE_KEY(id), JSON.stringify(v));
    } catch {
      // Over the storage quota: forget the screen; a reload then replays the ring instead.
      try { sessionStorage.removeItem(SAVE_KEY(id)); } catch { /* ignore */ }
    }
  };
  const scheduleSave = () => {
    if (!saveTimer) saveTimer = setTimeout(save, 1000);
  };

  // xterm parses writes in order, later: offsets are recorded when the bytes before them are drawn.
  const drawnAt = (offset: number) => term.write('', () => { drawnOffset = offset; scheduleSave(); });

  const iHold = () => hello !== null && holder !== null && String(holder) === String(hello.you);
  // The holder is this user, in another tab or window (or airmeshctl pod attach).
  const meElsewhere = () => !iHold() && holder !== null && !!holderUser && holderUser === ctx.who.user;

  const fitAndSend = () => {
    if (!iHold()) return;
    try { fit.fit(); } catch { /* not laid out yet */ }
    conn.sendJSON({ type: 'resize', cols: term.cols, rows: term.rows });
  };

  const conn = new TermConnection(id, saved ? saved.offset : 0, {
    hello(hl, requested) {
      hello = hl;
      notices.querySelector('[data-key="conn"]')?.remove();
      if (hl.offset < requested) {
        // The appliance restarted the stream (a new ring): redraw from what it has.
        term.reset();
        drawnAt(hl.offset);
      } else if (hl.offset > requested) {
        const lost = hl.offset - requested;
        say('warn', requested === 0
          ? `Earlier output (${fmtBytes(lost)}) is no longer in the appliance's buffer; the recording has all of it.`
          : `${fmtBytes(lost)} of output went by while this page was away and is no longer buffered; the recording has it.`, 'gap');
        drawnAt(hl.offset);
      }
      holder = hl.control ?? null;
      holderUser = hl.control_user ?? null;
      setPodState(hl.state);
      if (iHold()) fitAndSend();
      else if (hl.cols > 0 && hl.rows > 0) term.resize(hl.cols, hl.rows);
      updateControl();
    },
    bytes(data) {
      const end = conn.offset; // the connection counted these bytes already
      term.write(data, () => {
        drawnOffset = end;
        scheduleSave();
      });
    },
    lagged(to, skipped) {
      drawnAt(to);
      say('warn', `This view fell behind the pod's output: ${fmtBytes(skipped)} were skipped to catch up, so the screen may be incomplete until the program redraws.`, 'lagged');
    },
    control(hd, user) {
      const before = iHold();
      holder = hd;
      holderUser = user;
      // The previous holder hears who took control.
      if (before && !iHold() && hd !== null) say('warn', `${user || 'Someone'} took control. You keep watching.`, 'taken');
      if (iHold()) notices.querySelector('[data-key="taken"]')?.remove();
      updateControl();
      if (!before && iHold()) fitAndSend();
    },
    resize(cols, rows) {
      if (!iHold() && cols > 0 && rows > 0) term.resize(cols, rows);
    },
    exit(state, code) {
      ended = true;
      setPodState(state);
      const text = state === POD_STATE.exited ? `The program ${exitWords(code)}.`
        : state === POD_STATE.stopped ? `The pod was stopped${code !== null && code !== 0 ? `: ${exitWords(code)}` : ''}.`
        : 'The pod failed.';
      notices.querySelector('[data-key="stopping"]')?.remove();
      // A failed pod's reason is the red banner (from the record); the notice would repeat it.
      if (state !== POD_STATE.failed) say(code === 0 || state === POD_STATE.stopped ? 'info' : 'warn', text, 'exit');
      // Hide the cursor: nothing reads input any more. (The reason is the notice above, not a
      // line in the terminal, which a saved screen would repeat at every visit.)
      term.options.cursorBlink = false;
      term.write('\x1b[?25l');
      void refreshPod();
      updateControl();
    },
    error(message) {
      say('error', message[0].toUpperCase() + message.slice(1), 'wserror');
    },
    status(st, secs) {
      status.className = 'conn conn-' + st;
      if (st === 'live') status.textContent = 'Live';
      else if (st === 'connecting') status.textContent = 'Connecting…';
      else if (st === 'ended') status.textContent = 'Ended';
      else {
        status.textContent = `Reconnecting in ${secs} s`;
        if (!ended) void refreshPod();
        const retry = h('button', { type: 'button', class: 'link', onclick: () => conn.reconnectNow() }, 'Retry now');
        say('warn', h('span', null, 'The terminal connection is down; it reconnects by itself and resumes where it stopped. ', retry), 'conn');
      }
      if (st !== 'retry') notices.querySelector('[data-key="conn"]')?.remove();
      updateControl();
    },
  });

  // --- control and input ----------------------------------------------------------------------
  function updateControl(): void {
    const live = conn.connected && !ended;
    if (!hello || ended) {
      controlText.textContent = '';
    } else if (iHold()) {
      controlText.textContent = 'You have control';
    } else if (meElsewhere()) {
      controlText.textContent = `${holderUser} has control (you, other tab)`;
    } else if (holder !== null) {
      controlText.textContent = `${holderUser || 'Someone'} has control`;
    } else {
      controlText.textContent = 'Nobody has control';
    }
    // Viewers watch: they are not offered a control they would be refused.
    controlBtn.hidden = ended || (!canWrite && !iHold());
    if (!canWrite && hello && !ended && !iHold()) controlText.textContent += ' · you can watch (viewer)';
    if (iHold()) {
      controlBtn.textContent = 'Release control';
      controlBtn.disabled = !live;
      controlBtn.title = 'Let someone else type; you keep watching.';
    } else {
      // The appliance's rules: members and above type; control is taken from another user by an
      // admin or owner or the pod's owner, never from your own other tab while it is active
      // (release it there; after control_idle anyone may take it).
      const locked = !!pod && podLocked(ctx.who, pod);
      const allowed = !!hello && hello.can_input && canWrite && !locked;
      const held = holder !== null;
      const mayTakeOver = ctx.who.role >= ROLE_ADMIN || (!!pod && whoName(pod.created_by) === ctx.who.user);
      const blocked = meElsewhere() || (held && !mayTakeOver);
      controlBtn.textContent = held && !blocked && allowed ? `Take control from ${holderUser || 'them'}` : 'Take control';
      controlBtn.disabled = !live || !allowed || blocked;
      controlBtn.title = locked ? podLockedWhy(pod!)
        : !allowed ? 'Your role can watch pods but not type into them.'
        : meElsewhere() ? 'You have control in another tab or window: release it there first.'
        : held && !mayTakeOver ? `${holderUser || 'Someone'} has control: they release it (the pod's owner or an admin may take it over).`
        : held ? `${holderUser || 'Someone'} has control; taking it over is recorded in the audit log.`
        : 'Type into the pod; your window size becomes its size.';
    }
    typeHint.hidden = true;
  }

  // Someone else's pod: say whose before typing into it (the appliance decides who may).
  const othersPod = () => !!pod && !!pod.created_by && whoName(pod.created_by) !== ctx.who.user;
  controlBtn.addEventListener('click', async () => {
    if (!iHold() && othersPod() && !(await confirmDialog(`Take control of ${whoName(pod!.created_by)}'s pod?`,
      `${whoName(pod!.created_by)} started this pod. What you type goes to their program; the take is in the audit log.`, 'Take control', false))) return;
    conn.sendJSON({ type: iHold() ? 'release' : 'take' });
    term.focus();
  });

  let hintTimer: ReturnType<typeof setTimeout> | null = null;
  const input = (bytes: Uint8Array) => {
    if (iHold()) {
      conn.sendBytes(bytes);
      return;
    }
    if (ended) return;
    typeHint.textContent = canWrite ? 'Take control to type into this terminal.' : 'Viewers can watch this terminal but not type into it.';
    typeHint.hidden = false;
    if (hintTimer) clearTimeout(hintTimer);
    hintTimer = setTimeout(() => (typeHint.hidden = true), 2500);
  };
  term.onData((d) => input(enc.encode(d)));
  term.onBinary((d) => input(Uint8Array.from(d, (c) => c.charCodeAt(0) & 0xff)));

  // The holder's window decides the pod's size; everyone else sees the pod at that size.
  let resizeTimer: ReturnType<typeof setTimeout> | null = null;
  const ro = new ResizeObserver(() => {
    if (resizeTimer) clearTimeout(resizeTimer);
    resizeTimer = setTimeout(fitAndSend, 80);
  });
  ro.observe(termBox);

  // --- prompts --------------------------------------------------------------------------------
  const sendPrompt = async () => {
    const text = promptText.value;
    if (!text.trim()) return;
    promptBtn.disabled = true;
    try {
      const r = await api<{ length: number }>('POST', `/pods/${encodeURIComponent(id)}/prompt`, { text });
      promptText.value = '';
      say('ok', `Prompt sent (${r.length} bytes).`, 'prompt');
    } catch (e) {
      say('error', errorText(e), 'prompt');
    } finally {
      promptBtn.disabled = false;
    }
  };
  promptBox.addEventListener('submit', (e) => {
    e.preventDefault();
    void sendPrompt();
  });
  promptText.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      void sendPrompt();
    }
  });

  // --- the pod record -------------------------------------------------------------------------
  function setPodState(state: string): void {
    if (pod) pod.state = state;
    clear(stateBox);
    stateBox.appendChild(badge(state));
    const ab = pod && !podEnded(state) ? agentBadge(pod.agent_state, agentMsg) : null;
    if (ab) stateBox.append(' ', ab);
    if (pod) {
      const d = stateDetail(pod);
      if (d) stateBox.appendChild(d);
    }
    ended = ended || podEnded(state);
    stopBtn.hidden = ended || !canWrite;
    promptBox.hidden = ended || !canWrite || !pod || pod.state !== POD_STATE.running;
    const locked = !!pod && podLocked(ctx.who, pod);
    stopBtn.disabled = locked;
    stopBtn.title = locked ? podLockedWhy(pod!) : '';
    // The pod's starter (or an admin) shares it: other members may then take control and stop it.
    shareBtn.hidden = ended || !pod || !canShare(ctx.who, pod);
    shareBtn.textContent = pod && pod.shared ? 'Shared ✓' : 'Share';
    shareBtn.setAttribute('aria-pressed', pod && pod.shared ? 'true' : 'false');
    shareBtn.title = pod && pod.shared ? 'Other members may take control of and stop this pod. Click to stop sharing.'
      : 'Only you and admins may take control of or stop this pod. Click to let other members too.';
    recBtn.hidden = !(pod && pod.recording);
    playBtn.hidden = recBtn.hidden;
    reviewLink.textContent = pod && pod.review_state ? 'Review: ' + pod.review_state : 'Review';
    if (pod && pod.state === 'failed') {
      clear(banner);
      append(banner, [h('strong', null, 'This pod failed'), h('span', { class: 'reason' }, failHelp(pod.reason))]);
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  async function refreshPod(): Promise<void> {
    try {
      pod = await api<Pod>('GET', '/pods/' + encodeURIComponent(id));
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        conn.close();
        clear(ctx.main);
        append(ctx.main, [h('div', { class: 'empty' }, h('h2', null, 'No such pod'),
          h('p', null, `Pod ${id} does not exist in your organization, or it was deleted.`),
          h('a', { href: '#/pods', class: 'btn btn-primary' }, 'Back to pods'))]);
      }
      return;
    }
    if (disposed) return;
    await loadPeople();
    if (disposed || !pod) return;
    renderFacts(pod);
    // The page says what the pod is: its display name (renamed in place by its starter or an
    // admin), the id on hover and in Details. An open rename is left alone by the poll.
    if (!editing()) {
      ctx.title(pod.display_name || 'Pod ' + id);
      (document.querySelector('.page-title') as HTMLElement | null)?.setAttribute('title', pod.display_name ? `${pod.display_name} (${id})` : id);
      const shownName = named(pod.display_name, id, 'strong pod-dn' + (pod.display_name ? '' : ' mono'), 'span', { id: 'pod-name' });
      clear(nameBox);
      append(nameBox, [shownName, canShare(ctx.who, pod) ? renameButton(shownName, 'pod', pod.display_name || '', '/pods/' + encodeURIComponent(id), () => void refreshPod()) : null]);
    }
    clear(meta);
    append(meta, [
      h('span', { class: 'mono', title: pod.command.join(' ') }, commandLabel(pod.command)),
      h('span', { class: 'sep' }, '·'),
      h('span', { class: 'ellipsis', title: pod.repo }, pod.repo),
      h('span', { class: 'sep' }, '·'),
      h('span', { class: 'mono' }, pod.branch),
    ]);
    setPodState(pod.state);
    updateControl();
    bindings.refresh();
  }

  stopBtn.addEventListener('click', async () => {
    const whose = othersPod() ? ` It was started by ${whoName(pod!.created_by)}, not you.` : '';
    if (!(await confirmDialog(`Stop pod ${id}?`, 'The program gets SIGTERM, then SIGKILL after 5 seconds.' + whose, 'Stop pod'))) return;
    try {
      await api('POST', `/pods/${id}/stop`);
      say('info', 'Stopping the pod…', 'stopping');
    } catch (e) {
      say('error', errorText(e));
    }
  });
  shareBtn.addEventListener('click', async () => {
    if (!pod) return;
    const on = !pod.shared;
    shareBtn.disabled = true;
    try {
      await api('POST', `/pods/${id}/share`, { shared: on });
      say('ok', on ? 'Shared: other members may take control of and stop this pod.' : 'No longer shared: only you and admins may take control of or stop it.', 'share');
      await refreshPod();
    } catch (e) {
      say('error', errorText(e), 'share');
    } finally {
      shareBtn.disabled = false;
    }
  });
  recBtn.addEventListener('click', () => void downloadRecording(id, (m) => say('error', m)));
  let closePlayer: (() => void) | null = null;
  const play = async () => {
    if (closePlayer) {
      closePlayer();
      closePlayer = null;
      playerBox.hidden = true;
      playBtn.textContent = 'Play recording';
      return;
    }
    playerBox.hidden = false;
    playBtn.textContent = 'Close player';
    closePlayer = await openPlayer(playerBox, id, (m) => say('error', m, 'player'));
  };
  playBtn.addEventListener('click', () => void play());

  let runnerName = '';
  function renderFacts(p: Pod): void {
    if (!runnerName && p.runner) {
      runnerName = ' ';
      void api<{ runners: Runner[] }>('GET', '/runners').then((r) => {
        runnerName = r.runners.find((x) => x.id === p.runner)?.hostname || p.runner;
        if (!disposed && pod) renderFacts(pod);
      }).catch(() => { runnerName = ''; });
    }
    clear(facts);
    const lim = p.limits || { memory: 0, pids: 0, cpu_millis: 0 };
    const limits = [lim.memory ? memWords(lim.memory) + ' memory' : '', lim.pids ? lim.pids + ' processes' : '', lim.cpu_millis ? lim.cpu_millis / 1000 + ' CPU' : ''].filter(Boolean).join(', ') || 'none set';
    const end = p.ended_ms || (podEnded(p.state) ? 0 : Date.now());
    const runtime = p.started_ms && end ? span((end - p.started_ms) / 1000) + (p.ended_ms ? '' : ' so far') : '—';
    const row = (k: string, v: string | Node, id?: string) => [h('dt', null, k), h('dd', id ? { id } : null, v)];
    append(facts, [h('dl', { class: 'facts' },
      row('Pod', h('span', { class: 'mono' }, p.id), 'fact-id'),
      p.display_name ? row('Name', h('span', { class: 'dn-full' }, p.display_name), 'fact-name') : null,
      row('Program', h('span', { class: 'mono' }, p.command.join(' ')), 'fact-command'),
      row('Repository', p.repo, 'fact-repo'),
      row('Branch', h('span', { class: 'mono' }, p.branch), 'fact-branch'),
      row('Base', p.base_ref || 'default branch', 'fact-base'),
      row('Limits', limits + (p.limits_note ? ` (${p.limits_note})` : ''), 'fact-limits'),
      row('Network', networkWords(p), 'fact-network'),
      row('Runner', runnerName || p.runner || '—', 'fact-runner'),
      row('Owner', h('span', { title: whoName(p.created_by) }, actorText(p.created_by)), 'fact-owner'),
      row('Created', dateTime(p.created_ms), 'fact-created'),
      row('Runtime', runtime, 'fact-runtime'),
      p.commit ? row('Commit', h('span', { class: 'mono' }, p.commit.slice(0, 12)), 'fact-commit') : null,
      p.state === 'exited' ? row('Exit', exitWords(p.exit_code), 'fact-exit') : null,
    ), egressBox, bindings.el]);
  }

  // --- bindings (issue 13): this pod's, both ways, live (bindings.ts) ----------------------------
  const bindings = bindingsPanel(ctx.who, id, () => pod);

  // --- egress decisions (network allow): the audit log's pod.egress events, then live ---------
  const egressList = h('ul', { class: 'egress-list', id: 'pod-egress-list' });
  const egressBox = h('section', { class: 'pod-egress', id: 'pod-egress', hidden: true, 'aria-label': 'Egress' },
    h('h3', null, 'Egress'), egressList);
  const egressSeen = new Set<number>();
  const addEgress = (e: AuditEvent) => {
    if (egressSeen.has(e.seq) || e.actor !== 'pod:' + id || e.action !== 'pod.egress') return;
    egressSeen.add(e.seq);
    egressBox.hidden = false;
    const d = (e.details || {}) as Record<string, unknown>;
    const hp = d.host ? `${d.host}:${d.port}` : '';
    const what = d.kind === 'close'
      ? `${hp} closed: ${fmtBytes(Number(d.bytes_up) || 0)} up, ${fmtBytes(Number(d.bytes_down) || 0)} down, ${span((Number(d.duration_ms) || 0) / 1000)}`
      : d.kind === 'connect' ? `${hp} connected` : `${hp ? hp + ' ' : ''}refused: ${String(d.reason || '')}`;
    const li = h('li', { class: 'egress-' + String(d.kind || 'event'), 'data-seq': String(e.seq) },
      h('time', null, new Date(e.time_ms).toLocaleTimeString()), ' ', what);
    // Newest first; keep the last 50.
    const after = Array.from(egressList.children).find((c) => Number((c as HTMLElement).dataset.seq) < e.seq);
    egressList.insertBefore(li, after || null);
    while (egressList.children.length > 50) egressList.lastElementChild?.remove();
  };
  // Live first, then the history: an event recorded between the two is in one of them (the
  // same event in both is shown once, by its seq).
  const egressHistory = () => void api<{ events: AuditEvent[] }>('GET', `/audit?action=pod.egress&actor=${encodeURIComponent('pod:' + id)}&limit=200`)
    .then((r) => { if (!disposed) r.events.forEach(addEgress); })
    .catch(() => { /* the list stays empty; live events still arrive */ });
  let egressWs: WebSocket | null = null;
  try {
    egressWs = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/events`);
    egressWs.onmessage = (m) => {
      if (typeof m.data !== 'string' || !m.data.includes('pod.egress')) return;
      try { addEgress(JSON.parse(m.data) as AuditEvent); } catch { /* not an event */ }
    };
    let asked = false;
    const once = () => { if (!asked) { asked = true; egressHistory(); } };
    egressWs.onopen = once;
    egressWs.onerror = once;
    egressWs.onclose = once;
  } catch {
    egressHistory(); /* no live list */
  }

  void refreshPod().then(() => {
    if (!disposed && pod) {
      try { fit.fit(); } catch { /* ignore */ }
      conn.connect();
      term.focus();
      // #/pods/ID?play=1 (Play in the pod list) opens the player at once.
      if (pod.recording && new URLSearchParams(location.hash.split('?')[1] || '').get('play') === '1') void play();
    }
  });
  // The WebSocket reports the state at connect and at exit; in between (pending → running),
  // while it is down, and after the end until the runner has uploaded the recording (for two
  // minutes at most), the record is polled.
  let endedSeen = 0;
  const poll = setInterval(() => {
    if (document.hidden || !pod) return;
    if (ended && !endedSeen) endedSeen = Date.now();
    const waiting = ended ? !pod.recording && Date.now() - endedSeen < 120000 : !conn.connected || !isRunning(pod.state);
    if (waiting) void refreshPod();
  }, 3000);
  const onHide = () => save();
  window.addEventListener('pagehide', onHide);
  // The agent's state, live from the shell's events watcher (agentstate.ts).
  const onAgent = (ev: Event) => {
    const e = (ev as CustomEvent<AgentStateEvent>).detail;
    if (!pod || e.pod !== id) return;
    pod.agent_state = e.state;
    agentMsg = e.message;
    setPodState(pod.state);
  };
  window.addEventListener('airmesh:agent-state', onAgent);

  return () => {
    save();
    disposed = true;
    clearInterval(poll);
    window.removeEventListener('pagehide', onHide);
    window.removeEventListener('airmesh:agent-state', onAgent);
    conn.close();
    egressWs?.close();
    bindings.dispose();
    ro.disconnect();
    if (saveTimer) clearTimeout(saveTimer);
    if (resizeTimer) clearTimeout(resizeTimer);
    closePlayer?.();
    term.dispose();
    pruneCspStyles();
    ctx.main.classList.remove('main-terminal');
  };
}

/** The egress policy in words; host (the runner's whole network) in red. */
function networkWords(p: Pod): string | Node {
  switch (p.network) {
    case 'host':
      return h('span', { class: 'net-host' }, "host (the runner's network)");
    case 'models':
      return 'models (the model gateway only)';
    case 'allow': {
      const a = p.egress_allow || [];
      return `allow (the model gateway and ${a.length ? a.join(', ') : 'no host:port yet'})`;
    }
    default:
      return 'none (loopback only)';
  }
}

function isRunning(state: string): boolean {
  return state === POD_STATE.running;
}

function fmtBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function span(s: number): string {
  s = Math.max(0, Math.round(s));
  if (s < 60) return s + ' s';
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** A failure reason and what to do about it. */
export function failHelp(reason: string): string {
  const r = reason || 'no reason was given';
  const hints: [RegExp, string][] = [
    // The runner's own checks at create already say what to do (or list the branches).
    [/^(repository \S+: |command ')/, ''],
    [/^base ref '.*\(branches: /, 'Pick one of the branches listed, a tag or a commit id.'],
    [/unsupported URL protocol|not found|does not exist|No such file/i, 'Check that the repository path or URL exists on the runner.'],
    [/ref|revspec|reference/i, 'Check the base ref: a branch, tag or commit that exists in the repository.'],
    [/exec|command|ENOENT|permission/i, 'Check that the program is installed on the runner and on its PATH.'],
    [/runner restarted|runner.*(gone|lost|offline)/i, 'The runner went away while the pod ran; start the pod again.'],
  ];
  const hint = hints.find(([re]) => re.test(r));
  return r[0].toUpperCase() + r.slice(1) + (r.endsWith('.') ? '' : '.') + (hint && hint[1] ? ' ' + hint[1] : '');
}

/** 536870912 → "512 MiB", 1610612736 → "1.5 GiB". */
function memWords(n: number): string {
  const units: [number, string][] = [[1 << 30, 'GiB'], [1 << 20, 'MiB'], [1 << 10, 'KiB']];
  for (const [u, name] of units) if (n >= u) return `${Number((n / u).toFixed(2))} ${name}`;
  return `${n} bytes`;
}
