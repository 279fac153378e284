// Topology (issue 13): the organization's pods as a live graph (cytoscape, bundled; drawn on a
// canvas, styled from JavaScript, so nothing here needs an inline style or eval under the CSP;
// its one <style> element goes through csp-styles.ts like xterm's).
//   - nodes: pods, labelled with the display name (else the id) and what they do, coloured by
//     state and agent state: working (green), waiting for input (amber), idle (blue), running
//     with no agent state (teal), starting (grey outline), ended (grey), failed (red). Ended pods
//     are hidden unless "Ended pods" is ticked or a shown binding or message involves them;
//   - directed edges: bindings from → to, labelled with their scopes; solid when active, dashed
//     when pending (rejected and ended ones are not drawn);
//   - channel nodes (#name, diamonds) with a dotted edge to each pod that posted in the channel
//     or was @mentioned there in the last hour, labelled with the count.
// Live from /api/v1/events: an agent state recolours its node at once; pod.* reloads the pods,
// binding.* the bindings; a channel.message adds its traffic. While the stream is down the page
// polls every 10 s. A click (tap) on a pod opens its page, on a channel the channel. Below the
// graph the same facts as text (pods with their state, bindings), which is also what a keyboard
// or a screen reader uses.
import cytoscape from 'cytoscape';

import { api, errorText, Pod, podEnded } from '../api';
import { AGENT_WORDS } from '../agentstate';
import { append, clear, h, notice } from '../dom';
import { LiveEvent, subscribeEvents } from '../events';
import type { Ctx } from '../main';
import { named } from '../names';
import { Binding, bindingState, listBindings, scopeWords } from './bindings';

const TRAFFIC_WINDOW_MS = 60 * 60 * 1000;
const POLL_MS = 10000;

interface Message { channel: string; seq: number; author: string; time_ms: number; mentions: { pod: string }[] }

/** A pod's colour class: the agent state while it runs, else its state. */
export function podLook(p: Pod): string {
  if (p.state === 'failed') return 'failed';
  if (podEnded(p.state)) return 'ended';
  if (p.state === 'running') return p.agent_state && AGENT_WORDS[p.agent_state] ? p.agent_state : 'running';
  return 'starting';
}
const LOOK_WORDS: Record<string, string> = {
  working: 'working', waiting: 'waiting for input', idle: 'idle', running: 'running', starting: 'starting', ended: 'ended', failed: 'failed',
};
const LOOK_COLOUR: Record<string, string> = {
  working: '#2da44e', waiting: '#d4a72c', idle: '#4c8df6', running: '#1b9aaa', starting: '#8c959f', ended: '#8c959f', failed: '#e5534b',
};

function themeColour(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function graphStyle(): cytoscape.StylesheetJson {
  const text = themeColour('--text', '#1f2328');
  const muted = themeColour('--muted', '#59636e');
  const panel = themeColour('--panel', '#ffffff');
  const accent = themeColour('--accent', '#1f6feb');
  const warn = themeColour('--warn', '#9a6700');
  const looks = Object.entries(LOOK_COLOUR).map(([k, c]) => ({
    selector: `node.pod.look-${k}`,
    style: k === 'starting' ? { 'background-color': panel, 'border-color': c, 'border-width': 3 } : { 'background-color': c, 'border-color': c },
  }));
  return [
    {
      selector: 'node',
      style: {
        label: 'data(label)', color: text, 'font-size': 12, 'text-wrap': 'wrap', 'text-max-width': '140px',
        'text-valign': 'bottom', 'text-margin-y': 6, 'text-outline-color': panel, 'text-outline-width': 2,
        'min-zoomed-font-size': 6,
      },
    },
    { selector: 'node.pod', style: { shape: 'ellipse', width: 34, height: 34, 'border-width': 2 } },
    ...looks,
    { selector: 'node.pod.look-ended', style: { opacity: 0.6 } },
    { selector: 'node.channel', style: { shape: 'diamond', width: 26, height: 26, 'background-color': muted, color: muted, 'font-size': 11 } },
    {
      selector: 'edge',
      style: {
        width: 2, 'curve-style': 'bezier', label: 'data(label)', 'font-size': 10, color: muted,
        'text-background-color': panel, 'text-background-opacity': 0.85, 'text-background-padding': '2px', 'text-rotation': 'autorotate',
      },
    },
    { selector: 'edge.binding', style: { 'line-color': accent, 'target-arrow-color': accent, 'target-arrow-shape': 'triangle', 'arrow-scale': 1.2 } },
    { selector: 'edge.binding.pending', style: { 'line-style': 'dashed', 'line-color': warn, 'target-arrow-color': warn } },
    { selector: 'edge.traffic', style: { 'line-style': 'dotted', 'line-color': muted, width: 1.5, opacity: 0.8 } },
    { selector: 'node:selected', style: { 'overlay-color': accent, 'overlay-opacity': 0.15, 'overlay-padding': 6 } },
  ];
}

export function topologyPage(ctx: Ctx): () => void {
  ctx.title('Topology');
  const messages = h('div', { class: 'messages', id: 'topology-messages' });
  const showEnded = h('input', { type: 'checkbox', id: 'topology-ended' });
  const legend = h('ul', { class: 'topology-legend', 'aria-label': 'Legend' },
    Object.keys(LOOK_COLOUR).map((k) => h('li', null, h('span', { class: 'swatch swatch-' + k, 'aria-hidden': 'true' }), LOOK_WORDS[k])),
    h('li', null, h('span', { class: 'swatch-line swatch-active', 'aria-hidden': 'true' }), 'binding'),
    h('li', null, h('span', { class: 'swatch-line swatch-pending', 'aria-hidden': 'true' }), 'pending binding'),
    h('li', null, h('span', { class: 'swatch-line swatch-traffic', 'aria-hidden': 'true' }), 'channel traffic (1 h)'));
  const graph = h('div', { class: 'topology-graph', id: 'topology-graph', role: 'img', 'aria-label': 'Graph of the pods, their bindings and channel traffic' });
  const empty = h('div', { id: 'topology-empty', hidden: true });
  const facts = h('div', { class: 'topology-facts', id: 'topology-facts' });
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Pods, the bindings between them and recent channel traffic, live. Click a pod to open it.'),
      h('label', { class: 'check' }, showEnded, ' Ended pods')),
    messages, legend, empty, graph, facts,
  ]);

  let pods: Pod[] = [];
  let bindings: Binding[] = [];
  const traffic = new Map<string, { pod: string; channel: string; times: number[] }>(); // key pod>channel
  const seenMsg = new Set<string>();
  let stopped = false;
  let live = false;

  const cy = cytoscape({
    container: graph,
    style: graphStyle(),
    minZoom: 0.3,
    maxZoom: 3,
    wheelSensitivity: 0.3,
    boxSelectionEnabled: false,
    autoungrabify: false,
  });
  // For tests and the curious (the browser's console): the graph's model.
  (graph as unknown as { cy: cytoscape.Core }).cy = cy;
  cy.on('tap', 'node', (e) => {
    const n = e.target as cytoscape.NodeSingular;
    if (n.hasClass('pod')) location.hash = '#/pods/' + encodeURIComponent(n.id());
    else if (n.hasClass('channel')) location.hash = '#/channels/' + encodeURIComponent(n.data('name'));
  });
  const ro = new ResizeObserver(() => cy.resize());
  ro.observe(graph);
  const themeWatch = new MutationObserver(() => cy.style(graphStyle()));
  themeWatch.observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
  const media = window.matchMedia('(prefers-color-scheme: dark)');
  const onMedia = () => cy.style(graphStyle());
  media.addEventListener('change', onMedia);

  const say = (text: string) => { clear(messages); if (text) messages.appendChild(notice('error', text, () => {})); };
  const podName = (p: Pod) => p.display_name || p.id;
  const nodeLabel = (p: Pod) => `${podName(p)}\n${LOOK_WORDS[podLook(p)]}`;

  function addTraffic(m: Message): void {
    const k = m.channel + '#' + m.seq;
    if (seenMsg.has(k) || Date.now() - m.time_ms > TRAFFIC_WINDOW_MS) return;
    seenMsg.add(k);
    const who = new Set<string>();
    if (m.author.startsWith('pod:')) who.add(m.author.slice(4));
    for (const x of m.mentions || []) if (x.pod) who.add(x.pod);
    for (const p of who) {
      const key = p + '>' + m.channel;
      const t = traffic.get(key) || { pod: p, channel: m.channel, times: [] };
      t.times.push(m.time_ms);
      traffic.set(key, t);
    }
  }

  /** The elements as they should be; then cytoscape is changed only where they differ. */
  function sync(): void {
    if (stopped) return;
    const now = Date.now();
    const shownBindings = bindings.filter((b) => ['pending', 'active'].includes(bindingState(b, now)));
    const recent = [...traffic.values()].map((t) => ({ ...t, n: t.times.filter((x) => now - x <= TRAFFIC_WINDOW_MS).length })).filter((t) => t.n > 0);
    const wanted = new Set<string>();
    for (const b of shownBindings) { wanted.add(b.from_pod); wanted.add(b.to_pod); }
    for (const t of recent) wanted.add(t.pod);
    const byId = new Map(pods.map((p) => [p.id, p]));
    const shownPods = pods.filter((p) => showEnded.checked || !podEnded(p.state) || wanted.has(p.id));
    const podIds = new Set(shownPods.map((p) => p.id));
    const els: cytoscape.ElementDefinition[] = [];
    for (const p of shownPods) {
      els.push({ group: 'nodes', data: { id: p.id, label: nodeLabel(p), state: p.state, agent: p.agent_state || '', look: podLook(p) }, classes: 'pod look-' + podLook(p) });
    }
    const talk = recent.filter((t) => podIds.has(t.pod));
    for (const c of new Set(talk.map((t) => t.channel))) els.push({ group: 'nodes', data: { id: 'ch:' + c, name: c, label: '#' + c }, classes: 'channel' });
    for (const t of talk) {
      els.push({ group: 'edges', data: { id: `tr:${t.pod}>${t.channel}`, source: t.pod, target: 'ch:' + t.channel, label: String(t.n), count: t.n }, classes: 'traffic' });
    }
    for (const b of shownBindings) {
      if (!podIds.has(b.from_pod) || !podIds.has(b.to_pod)) continue;
      const st = bindingState(b, now);
      els.push({ group: 'edges', data: { id: b.id, source: b.from_pod, target: b.to_pod, label: b.scopes.join('+'), state: st, scopes: b.scopes.join(' ') }, classes: 'binding ' + st });
    }
    const want = new Map(els.map((e) => [e.data.id as string, e]));
    let structural = false;
    cy.batch(() => {
      cy.elements().forEach((el) => {
        if (!want.has(el.id())) { el.remove(); structural = true; }
      });
      for (const e of els) {
        const cur = cy.getElementById(e.data.id as string);
        if (cur.empty()) {
          cy.add(e);
          structural = true;
        } else if (cur.isEdge() && (cur.data('source') !== e.data.source || cur.data('target') !== e.data.target)) {
          cur.remove();
          cy.add(e);
          structural = true;
        } else {
          cur.data(e.data);
          cur.classes(e.classes as string);
        }
      }
    });
    empty.hidden = shownPods.length > 0;
    if (graph.hidden !== (shownPods.length === 0)) {
      graph.hidden = shownPods.length === 0;
      cy.resize(); // it had no size while hidden
    }
    if (structural) layout();
    graph.dataset.nodes = String(cy.nodes().length);
    graph.dataset.edges = String(cy.edges().length);
    graph.dataset.ready = '1';
    clear(empty);
    if (!shownPods.length) {
      const ended = pods.length;
      append(empty, [h('div', { class: 'empty' },
        h('h2', null, ended ? 'No running pods' : 'No pods yet'),
        h('p', null, ended ? `All ${ended} of this organization's pods have ended: tick "Ended pods" to see them.` : 'Start a pod to see it here, with the pods it is bound to and the channels it talks in.'),
        ended ? null : h('a', { href: '#/pods', class: 'btn btn-primary' }, 'Go to pods'))]);
    }
    drawFacts(shownPods, shownBindings.filter((b) => podIds.has(b.from_pod) && podIds.has(b.to_pod)), byId);
  }

  let laidOut = false;
  function layout(): void {
    if (!cy.nodes().length) return;
    cy.layout({
      name: 'cose', animate: false, randomize: !laidOut, fit: true, padding: 40, nodeDimensionsIncludeLabels: true,
      idealEdgeLength: () => 110, nodeRepulsion: () => 9000, numIter: 600,
    } as cytoscape.LayoutOptions).run();
    // A few pods fitted to the box would be drawn huge: at most a little above natural size.
    if (cy.zoom() > 1.3) { cy.zoom(1.3); cy.center(); }
    laidOut = true;
  }

  function drawFacts(shown: Pod[], bs: Binding[], byId: Map<string, Pod>): void {
    clear(facts);
    if (!shown.length) return;
    const link = (id: string) => named(byId.get(id)?.display_name, id, '', 'a', { href: '#/pods/' + encodeURIComponent(id) });
    append(facts, [
      h('section', { class: 'panel' }, h('h2', { class: 'section-title' }, `Pods (${shown.length})`),
        h('ul', { class: 'topology-list', id: 'topology-pods' }, shown.map((p) => h('li', { 'data-pod': p.id, 'data-look': podLook(p) },
          h('span', { class: 'swatch swatch-' + podLook(p), 'aria-hidden': 'true' }), link(p.id), ' ', h('span', { class: 'muted small' }, LOOK_WORDS[podLook(p)]))))),
      h('section', { class: 'panel' }, h('h2', { class: 'section-title' }, `Bindings (${bs.length})`),
        bs.length
          ? h('ul', { class: 'topology-list', id: 'topology-bindings' }, bs.map((b) => h('li', { 'data-binding': b.id, 'data-state': bindingState(b) },
            link(b.from_pod), ' → ', link(b.to_pod), ' ', h('span', { class: 'muted small' }, `${scopeWords(b.scopes)}, ${bindingState(b)}`))))
          : h('p', { class: 'muted small', id: 'topology-no-bindings' }, 'No pod is bound to another.')),
    ]);
  }

  async function loadPods(): Promise<void> {
    const r = await api<{ pods: Pod[] }>('GET', '/pods');
    pods = r.pods;
  }
  async function loadBindings(): Promise<void> {
    try {
      bindings = await listBindings();
    } catch (e) {
      bindings = [];
      say('Bindings: ' + errorText(e));
    }
  }
  async function loadTraffic(): Promise<void> {
    try {
      const cs = (await api<{ channels: { name: string }[] }>('GET', '/channels')).channels;
      await Promise.all(cs.slice(0, 50).map(async (c) => {
        const r = await api<{ messages: Message[] }>('GET', `/channels/${encodeURIComponent(c.name)}/messages?limit=100`);
        for (const m of r.messages) addTraffic(m);
      }));
    } catch { /* no traffic shown; bindings and pods still are */ }
  }
  async function loadAll(): Promise<void> {
    try {
      await Promise.all([loadPods(), loadBindings(), loadTraffic()]);
      if (!stopped) sync();
    } catch (e) {
      if (!stopped) say(errorText(e));
    }
  }

  // Live: coalesce reloads (a pod start is several records) into one per 200 ms.
  const due = new Set<'pods' | 'bindings'>();
  let soon: ReturnType<typeof setTimeout> | null = null;
  const reload = (what: 'pods' | 'bindings') => {
    due.add(what);
    if (soon) return;
    soon = setTimeout(async () => {
      soon = null;
      const w = new Set(due);
      due.clear();
      try {
        await Promise.all([w.has('pods') ? loadPods() : null, w.has('bindings') ? loadBindings() : null]);
        sync();
      } catch (e) { say(errorText(e)); }
    }, 200);
  };
  const onEvent = (e: LiveEvent) => {
    if (e.type === 'channel.message' && e.message) {
      addTraffic(e.message as Message);
      sync();
      return;
    }
    if (e.type === 'binding' && e.binding && typeof (e.binding as Binding).id === 'string') {
      const b = e.binding as Binding;
      const i = bindings.findIndex((x) => x.id === b.id);
      if (i >= 0) bindings[i] = b; else bindings.push(b);
      sync();
      return;
    }
    const a = e.action || '';
    if (a === 'pod.agent_state' && e.target?.startsWith('pod:') && typeof e.details?.state === 'string') {
      const p = pods.find((x) => x.id === e.target!.slice(4));
      if (p) { p.agent_state = e.details.state as string; sync(); }
      return;
    }
    if (a.startsWith('binding.')) reload('bindings');
    else if (a.startsWith('pod.') && a !== 'pod.egress' && a !== 'pod.terminal.take') reload('pods');
  };
  const unsubscribe = subscribeEvents(onEvent, (on) => {
    live = on;
    graph.dataset.live = on ? '1' : '';
    if (on) void loadAll(); // whatever happened while the stream was down
  });
  const poll = setInterval(() => { if (!live && !document.hidden) void loadAll(); }, POLL_MS);
  const tick = setInterval(() => sync(), 60000); // traffic older than the window fades out
  showEnded.addEventListener('change', () => sync());
  void loadAll();

  return () => {
    stopped = true;
    unsubscribe();
    clearInterval(poll);
    clearInterval(tick);
    if (soon) clearTimeout(soon);
    ro.disconnect();
    themeWatch.disconnect();
    media.removeEventListener('change', onMedia);
    cy.destroy();
  };
}
