// Pods, the landing page: the overview first (pods by state, runners online and slots used of
// their capacity, recent failures with their reasons, who is running what, model usage today
// from GET /api/v1/usage), live over /api/v1/events (any pod, runner or model event refreshes
// it; polled every few seconds as well);
// then the list (newest first) with filters (text, state, owner, runner, repository, "My pods"),
// stop, delete, recording and a link to each pod's page; "New pod" opens the create form
// (runner or labels, repo, base ref, branch, the program: a shell, an agent of the catalog that
// the chosen runner has (GET /api/v1/agents) with its initial prompt, or a typed command; env,
// limits, network).
import { Agent, api, canShare, errorText, Pod, POD_STATE, podEnded, podLocked, podLockedWhy, ROLE_ADMIN, ROLE_MEMBER, Runner, toError } from '../api';
import { actorEl, actorText, displayNameProblem, editing, loadPeople, named, renameButton } from '../names';
import { ago, append, badge, clear, confirmDialog, dateTime, exitWords, h, notice, trunc } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';
import { parsePairs } from './runners';
import { agentBadge, AGENT_WORDS } from '../agentstate';

export const PRESETS: { id: string; label: string; command: string[] }[] = [
  // bash when the runner has it, sh otherwise.
  { id: 'shell', label: 'Shell', command: ['sh', '-c', 'if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi'] },
  { id: 'claude', label: 'Claude Code', command: ['claude'] },
  { id: 'aider', label: 'Aider', command: ['aider'] },
  { id: 'codex', label: 'Codex', command: ['codex'] },
];

export function podsPage(ctx: Ctx): () => void {
  ctx.title('Pods');
  const canWrite = ctx.who.role >= ROLE_MEMBER;
  const messages = h('div', { class: 'messages' });
  const formPanel = h('section', { class: 'panel', hidden: true, 'aria-label': 'New pod' });
  const list = h('section', { class: 'panel', 'aria-label': 'Pods' }, h('div', { class: 'loading' }, 'Loading pods…'));
  const overview = h('section', { class: 'overview', id: 'overview', 'aria-label': 'Overview' });
  const q = new URLSearchParams(location.hash.split('?')[1] || '');
  const f = { text: '', state: '', owner: '', runner: '', repo: '', mine: q.get('mine') === '1' };
  const search = h('input', { id: 'pods-search', type: 'search', placeholder: 'Filter: id, branch, repo, command, owner', 'aria-label': 'Filter pods', autocomplete: 'off', spellcheck: 'false' });
  const selState = h('select', { id: 'pods-state', 'aria-label': 'State' });
  const selOwner = h('select', { id: 'pods-owner', 'aria-label': 'Owner' });
  const selRunner = h('select', { id: 'pods-runner', 'aria-label': 'Runner' });
  const selRepo = h('select', { id: 'pods-repo', 'aria-label': 'Repository' });
  const mineBtn = h('button', { type: 'button', class: 'btn', id: 'pods-mine', 'aria-pressed': String(f.mine) }, 'My pods');
  const filterBar = h('div', { class: 'filters-bar', role: 'search', 'aria-label': 'Filter pods' }, search, selState, selOwner, selRunner, selRepo, mineBtn);
  let allPods: Pod[] = [];
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'new-pod' }, 'New pod');
  let runners: Runner[] = [];
  let agents: Agent[] = [];
  let onAgents: (() => void) | null = null; // the open form's refill of its Program list
  let stopped = false;

  newBtn.addEventListener('click', () => {
    formPanel.hidden = !formPanel.hidden;
    if (!formPanel.hidden) {
      renderForm();
      // The catalog: which agents the runners have (the Program list follows the runner chosen).
      api<{ agents: Agent[] }>('GET', '/agents').then((a) => {
        agents = a.agents;
        onAgents?.();
      }).catch(() => {});
      // The runners as they are now, not as the last poll saw them (one may have just come online).
      api<{ runners: Runner[] }>('GET', '/runners').then((r) => {
        runners = r.runners;
        syncRunnerOptions();
      }).catch(() => {});
    }
  });
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'A pod is one program (an agent or a shell) on a runner, in its own git worktree and sandbox.'),
      canWrite ? newBtn : h('span', { class: 'muted' }, 'Viewers can watch pods but not start them.')),
    messages, formPanel, overview, filterBar, list,
  ]);
  if (q.get('focus') === 'search') setTimeout(() => search.focus(), 0);
  const refilter = () => {
    f.text = search.value.trim().toLowerCase();
    f.state = selState.value;
    f.owner = selOwner.value;
    f.runner = selRunner.value;
    f.repo = selRepo.value;
    renderList(allPods);
  };
  search.addEventListener('input', refilter);
  for (const sel of [selState, selOwner, selRunner, selRepo]) sel.addEventListener('change', refilter);
  mineBtn.addEventListener('click', () => {
    f.mine = !f.mine;
    mineBtn.setAttribute('aria-pressed', String(f.mine));
    history.replaceState(null, '', '#/pods' + (f.mine ? '?mine=1' : ''));
    renderList(allPods);
  });

  const say = (kind: 'error' | 'ok', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  /** Keep an open form's runner list current (states and new runners), its choice kept. */
  function syncRunnerOptions(): void {
    const sel = formPanel.querySelector<HTMLSelectElement>('#pod-runner');
    if (!sel) return;
    const cur = sel.value;
    for (const r of runners) {
      let o = Array.from(sel.options).find((x) => x.value === r.id);
      if (!o) {
        o = h('option', { value: r.id }) as HTMLOptionElement;
        sel.appendChild(o);
      }
      o.disabled = r.state !== 'online';
      o.textContent = `${r.hostname} (${r.state})`;
    }
    const still = Array.from(sel.options).find((x) => x.value === cur && !x.disabled);
    sel.value = still ? cur : '';
    if (sel.value !== cur) sel.dispatchEvent(new Event('change'));
  }

  function renderForm(): void {
    clear(formPanel);
    const runner = h('select', { id: 'pod-runner' }, h('option', { value: '' }, 'Any online runner'),
      runners.map((r) => h('option', { value: r.id, disabled: r.state !== 'online' }, `${r.hostname} (${r.state})`)));
    const labels = h('input', { id: 'pod-labels', placeholder: 'gpu=a100', autocomplete: 'off' });
    const display = h('input', { id: 'pod-display-name', placeholder: 'Fix the login page 🔑', autocomplete: 'off' });
    const repo = h('input', { id: 'pod-repo', placeholder: 'https://git.example.lan/team/app.git or /srv/git/app', required: true, autocomplete: 'off' });
    const baseRef = h('input', { id: 'pod-base-ref', placeholder: 'HEAD (the default branch)', autocomplete: 'off' });
    const branch = h('input', { id: 'pod-branch', placeholder: 'airmesh/pod-<id>', autocomplete: 'off' });
    const preset = h('select', { id: 'pod-preset' });
    const prompt = h('textarea', { id: 'pod-prompt', rows: 3, placeholder: 'Fix the failing test in src/parse.c and commit the fix.', spellcheck: 'false' });
    const promptField = field('Prompt', prompt, 'The agent\'s first task (optional).');
    promptField.hidden = true;
    promptField.classList.add('span-all');
    // Shell, then the catalog's agents (offered when the chosen runner, or any online one, has
    // the CLI), then a typed command.
    const fillPrograms = () => {
      const cur = preset.value || 'shell';
      clear(preset);
      preset.appendChild(h('option', { value: 'shell' }, PRESETS[0].label));
      for (const a of agents) {
        const on = a.runners.filter((r) => !runner.value || r.id === runner.value);
        const version = on.length === 1 && on[0].version ? ' ' + on[0].version : '';
        preset.appendChild(h('option', { value: 'agent:' + a.name, disabled: on.length === 0, 'data-agent': a.name },
          on.length ? a.title + version : `${a.title} (not on ${runner.value ? 'this runner' : 'any online runner'})`));
      }
      preset.appendChild(h('option', { value: 'custom' }, 'Other command…'));
      const keep = Array.from(preset.options).find((o) => o.value === cur && !o.disabled);
      preset.value = keep ? cur : 'shell';
      syncProgram();
    };
    const syncProgram = () => {
      const a = agents.find((x) => 'agent:' + x.name === preset.value);
      promptField.hidden = !a;
      const hint = promptField.querySelector('.hint');
      if (a && hint) hint.textContent = (a.prompt === 'argument' ? 'Given to the agent as its first task.' : 'Typed into the agent once it is ready.') + (a.notes ? ' ' + a.notes + '.' : '');
    };
    const custom = h('input', { id: 'pod-command', placeholder: 'python3 -m http.server 8000', autocomplete: 'off' });
    const customField = field('Command', custom, 'Split into words like a shell would; quote words with spaces.');
    customField.hidden = true;
    preset.addEventListener('change', () => {
      customField.hidden = preset.value !== 'custom';
      syncProgram();
      if (!customField.hidden) custom.focus();
    });
    runner.addEventListener('change', fillPrograms);
    onAgents = fillPrograms;
    fillPrograms();
    const env = h('textarea', { id: 'pod-env', rows: 3, placeholder: 'OPENAI_API_BASE=http://llm.lan:8000/v1', spellcheck: 'false' });
    const memory = h('input', { id: 'pod-memory', placeholder: '2G', autocomplete: 'off' });
    const pids = h('input', { id: 'pod-pids', type: 'number', min: '0', placeholder: '512' });
    const cpu = h('input', { id: 'pod-cpu', type: 'number', min: '0', step: '0.25', placeholder: '2' });
    const network = h('select', { id: 'pod-network' },
      h('option', { value: '' }, "The org's default (models if it has a model endpoint, else none)"),
      h('option', { value: 'none' }, 'None (loopback only)'),
      h('option', { value: 'models' }, 'Models (the model gateway only)'),
      h('option', { value: 'allow' }, "Allow (the gateway + the org's allowed host:ports)"),
      h('option', { value: 'host' }, "Host (the runner's network; admins only)"));
    const keep = h('input', { id: 'pod-keep', type: 'checkbox' });
    const err = h('div', { class: 'form-error span-all', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Start pod');
    const form = h('form', { class: 'form-grid', id: 'pod-form', novalidate: true },
      h('h2', { class: 'span-all' }, 'New pod'),
      field('Name', display, 'Optional: what people see instead of the pod id (any language, up to 64 characters).'),
      field('Repository', repo, 'A git URL (https://, ssh://, file://) or an absolute path the runner can reach.'),
      field('Program', preset),
      customField,
      promptField,
      field('Base ref', baseRef, 'Branch, tag or commit to start from.'),
      field('Branch', branch, 'The new branch the pod works on.'),
      field('Runner', runner),
      field('Runner labels', labels, 'With "Any online runner": pick one that has all these key=value labels.'),
      field('Environment', env, 'One NAME=value per line.'),
      h('fieldset', { class: 'span-all limits' },
        h('legend', null, 'Limits and network'),
        field('Memory', memory), field('Processes', pids), field('CPU cores', cpu), field('Network', network)),
      h('div', { class: 'field span-all checkbox' }, keep, h('label', { for: 'pod-keep' }, 'Keep the worktree on the runner after the pod ends')),
      err,
      h('div', { class: 'actions span-all' },
        h('button', { type: 'button', class: 'btn', onclick: () => { formPanel.hidden = true; } }, 'Cancel'),
        submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const body: Record<string, unknown> = {};
      const fail = (msg: string, el?: HTMLElement) => { err.textContent = msg; el?.focus(); };
      if (!repo.value.trim()) return fail('Enter the repository the pod works in.', repo);
      const badRepo = repoProblem(repo.value.trim());
      if (badRepo) return fail(badRepo, repo);
      // The base ref is a revision (main, v1.2, a commit, HEAD~2); the branch is a new ref name.
      if (/\s/.test(baseRef.value.trim())) return fail('The base ref has a space: branch, tag and commit names have none.', baseRef);
      const badBranch = refProblem(branch.value.trim());
      if (badBranch) return fail('The branch ' + badBranch, branch);
      body.repo = repo.value.trim();
      const dn = display.value.trim();
      const badDn = dn ? displayNameProblem(dn) : null;
      if (badDn) return fail('Name: ' + badDn, display);
      if (dn) body.display_name = dn;
      if (preset.value === 'custom') {
        const words = splitWords(custom.value);
        if (typeof words === 'string') return fail(words, custom);
        if (words.length === 0) return fail('Enter the command to run.', custom);
        body.command = words;
      } else if (preset.value.startsWith('agent:')) {
        body.agent = preset.value.slice(6);
        if (prompt.value.trim()) body.prompt = prompt.value;
      } else {
        body.command = PRESETS.find((p) => p.id === preset.value)!.command;
      }
      if (runner.value) body.runner = runner.value;
      const l = parsePairs(labels.value);
      if (typeof l === 'string') return fail(l, labels);
      if (Object.keys(l).length) body.labels = l;
      if (baseRef.value.trim()) body.base_ref = baseRef.value.trim();
      if (branch.value.trim()) body.branch = branch.value.trim();
      const envs: Record<string, string> = {};
      for (const line of env.value.split('\n').map((s) => s.trim()).filter(Boolean)) {
        const i = line.indexOf('=');
        if (i <= 0) return fail(`Write each environment variable as NAME=value ("${line}" has no "=").`, env);
        envs[line.slice(0, i)] = line.slice(i + 1);
      }
      if (Object.keys(envs).length) body.env = envs;
      const limits: Record<string, unknown> = {};
      if (memory.value.trim()) {
        if (!/^\d+\s*([KMG]i?B?)?$/i.test(memory.value.trim())) return fail('Memory is a size such as 512M or 2G.', memory);
        limits.memory = memory.value.trim().replace(/\s+/g, '');
      }
      if (pids.value) limits.pids = Math.floor(Number(pids.value));
      if (cpu.value) limits.cpu = Number(cpu.value);
      if (Object.keys(limits).length) body.limits = limits;
      if (network.value) body.network = network.value;
      if (keep.checked) body.keep_worktree = true;
      submit.disabled = true;
      submit.textContent = 'Starting…';
      try {
        const pod = await api<Pod>('POST', '/pods', body);
        formPanel.hidden = true;
        location.hash = '#/pods/' + pod.id;
      } catch (e2) {
        fail(errorText(e2));
      } finally {
        submit.disabled = false;
        submit.textContent = 'Start pod';
      }
    });
    formPanel.appendChild(form);
    repo.focus();
  }

  async function stop(p: Pod): Promise<void> {
    const owner = who(p.created_by);
    const whose = owner !== ctx.who.user && owner !== '—' ? ` It was started by ${actorText(p.created_by)}, not you.` : '';
    const ok = await confirmDialog(`Stop pod ${p.display_name || p.id}?`, 'The program gets SIGTERM, then SIGKILL after 5 seconds. Its branch and recording are kept.' + whose, 'Stop pod');
    if (!ok) return;
    try {
      await api('POST', `/pods/${p.id}/stop`);
      say('ok', `Pod ${p.id} is stopping.`);
      void refresh();
    } catch (e) {
      say('error', errorText(e));
    }
  }

  async function remove(p: Pod): Promise<void> {
    const ok = await confirmDialog(`Delete pod ${p.id}?`, 'Its record and recording are deleted. The branch it pushed stays in the repository mirror.', 'Delete pod');
    if (!ok) return;
    try {
      await api('DELETE', `/pods/${p.id}`);
      say('ok', `Pod ${p.id} is deleted.`);
      void refresh();
    } catch (e) {
      say('error', errorText(e));
    }
  }

  const host = (id: string) => runners.find((r) => r.id === id)?.hostname || id || '—';

  /** Refill a filter's options (keeping its choice) from the values the pods have. */
  function options(sel: HTMLSelectElement, all: string, values: [string, string][]): void {
    const cur = sel.value;
    clear(sel);
    sel.appendChild(h('option', { value: '' }, all));
    for (const [v, label] of values) sel.appendChild(h('option', { value: v }, label));
    sel.value = values.some(([v]) => v === cur) ? cur : '';
  }

  function renderList(pods: Pod[]): void {
    allPods = pods;
    const uniq = (xs: string[]) => Array.from(new Set(xs.filter(Boolean))).sort();
    options(selState, 'Any state', uniq(pods.map((p) => p.state)).map((v) => [v, v]));
    options(selOwner, 'Anyone', uniq(pods.map((p) => p.created_by)).map((v) => [v, actorText(v)]));
    options(selRunner, 'Any runner', uniq(pods.map((p) => p.runner)).map((v) => [v, host(v)]));
    options(selRepo, 'Any repository', uniq(pods.map((p) => p.repo)).map((v) => [v, v.length > 40 ? '…' + v.slice(-39) : v]));
    filterBar.hidden = pods.length === 0;
    renderOverview(pods);
    clear(list);
    if (pods.length === 0) {
      append(list, [h('div', { class: 'empty' },
        h('h2', null, 'No pods yet'),
        h('p', null, !canWrite
          ? 'Pods that members start show up here; you can watch their terminals.'
          : runners.some((r) => r.state === 'online')
            ? 'Start an agent or a shell on one of your runners.'
            : ctx.who.role >= ROLE_ADMIN
              ? 'No runner is online. Enroll one on the Runners page first.'
              : 'No runner is online. An admin enrolls runners on the Runners page.'),
        canWrite ? h('button', { type: 'button', class: 'btn btn-primary', onclick: () => newBtn.click() }, 'New pod') : null)]);
      return;
    }
    const me = 'user:' + ctx.who.user;
    const shown = pods.filter((p) => (!f.mine || p.created_by === me || p.created_by === ctx.who.user)
      && (!f.state || p.state === f.state) && (!f.owner || p.created_by === f.owner)
      && (!f.runner || p.runner === f.runner) && (!f.repo || p.repo === f.repo)
      && (!f.text || [p.id, p.display_name || '', p.branch, p.repo, p.command.join(' '), p.created_by, actorText(p.created_by), host(p.runner), p.state, p.reason].join(' ').toLowerCase().includes(f.text)));
    shown.sort((a, b) => b.created_ms - a.created_ms);
    if (shown.length === 0) {
      append(list, [h('p', { class: 'muted', id: 'pods-none' }, `None of the ${pods.length} pods matches these filters.`)]);
      return;
    }
    append(list, [h('table', { class: 'table', id: 'pods-table' },
      h('thead', null, h('tr', null, ['Pod', 'State', 'Program', 'Owner', 'Started', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, shown.map((p) => { const shownName = named(p.display_name, p.id, 'strong w-name pod-dn' + (p.display_name ? '' : ' mono'), 'a', { href: '#/pods/' + p.id }); return h('tr', { 'data-pod': p.id },
        h('td', { class: 'cell-name' }, shownName,
          p.display_name ? h('div', { class: 'muted small mono' }, p.id) : null,
          trunc(p.branch, 'muted small mono w-name', 'div')),
        h('td', null, badge(p.state), ' ', agentBadge(p.agent_state), stateDetail(p)),
        h('td', { class: 'small' }, trunc(p.command.join(' '), 'mono w-prog cmd-text', 'div'), trunc(p.repo, 'muted w-prog repo-text', 'div')),
        h('td', { class: 'small owner-cell' }, actorEl(p.created_by, 'w-owner owner-text', 'div'), trunc(host(p.runner), 'muted w-owner runner-text', 'div')),
        h('td', { class: 'small nowrap', title: dateTime(p.started_ms || p.created_ms) }, ago(p.started_ms || p.created_ms)),
        h('td', { class: 'row-actions row-actions-wrap' },
          h('a', { href: '#/pods/' + p.id, class: 'btn btn-small' }, podEnded(p.state) ? 'Output' : 'Terminal'),
          p.recording ? h('a', { href: '#/pods/' + p.id + '?play=1', class: 'btn btn-small', title: 'Play the recording in the browser' }, 'Play') : null,
          p.recording ? h('button', { type: 'button', class: 'btn btn-small', title: 'Download the recording (asciicast)', onclick: () => void downloadRecording(p.id, (m) => say('error', m)) }, 'Download') : null,
          canWrite && !podEnded(p.state) ? (podLocked(ctx.who, p)
            ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', disabled: true, title: podLockedWhy(p), 'aria-label': 'Stop (not allowed: ' + podLockedWhy(p) + ')' }, 'Stop')
            : h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void stop(p) }, 'Stop')) : null,
          canShare(ctx.who, p) ? renameButton(shownName, 'pod', p.display_name || '', '/pods/' + encodeURIComponent(p.id), (n) => {
            say('ok', n ? `Pod ${p.id} is now called ${n}.` : `Pod ${p.id} is shown by its id again.`);
            void refresh();
          }) : null,
          canWrite && podEnded(p.state) ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void remove(p) }, 'Delete') : null)); }))),
    ]);
  }

  /** GET /api/v1/usage: the model gateway's numbers (the org today, each pod, each user today). */
  interface Counts { requests: number; tokens_in: number; tokens_out: number; tokens: number; errors: number; refused: number }
  interface Usage { day: string; tokens_per_day: number; today: Counts; pods: (Counts & { pod: string })[] }
  let usage: Usage | null = null;
  const num = (n: number) => n.toLocaleString('en-US');

  /** The model usage card: today's tokens against the quota, requests, refusals, the top pods. */
  function usageCard(pods: Pod[]): HTMLElement {
    const u = usage;
    if (!u) return h('div', { class: 'ov-card', id: 'ov-usage' }, h('h2', null, 'Model usage today'), h('p', { class: 'muted small' }, 'Not available.'));
    const t = u.today;
    const byId = new Map(pods.map((p) => [p.id, p]));
    const top = u.pods.filter((x) => x.tokens > 0 && byId.has(x.pod)).sort((a, b) => b.tokens - a.tokens).slice(0, 3);
    return h('div', { class: 'ov-card', id: 'ov-usage' }, h('h2', null, 'Model usage today'),
      h('div', { class: 'ov-big', id: 'ov-tokens', 'data-tokens': String(t.tokens), 'data-quota': String(u.tokens_per_day) },
        u.tokens_per_day ? `${num(t.tokens)} of ${num(u.tokens_per_day)} tokens` : `${num(t.tokens)} tokens`),
      h('div', { class: 'muted small', id: 'ov-requests', 'data-requests': String(t.requests), 'data-refused': String(t.refused) },
        `${num(t.requests)} requests · ${num(t.tokens_in)} in, ${num(t.tokens_out)} out` + (t.refused ? ` · ${num(t.refused)} refused` : '') + (t.errors ? ` · ${num(t.errors)} errors` : '')),
      top.length === 0 ? null : h('ul', { class: 'ov-list' }, top.map((x) => { const p = byId.get(x.pod)!; return h('li', { 'data-pod': x.pod },
        named(p.display_name, p.id, p.display_name ? '' : 'mono', 'a', { href: '#/pods/' + p.id }), trunc(`${num(x.tokens)} tokens (all time)`, 'muted')); })));
  }

  function renderOverview(pods: Pod[]): void {
    clear(overview);
    if (pods.length === 0 && runners.length === 0) {
      overview.hidden = true;
      return;
    }
    overview.hidden = false;
    const count = (pred: (p: Pod) => boolean) => pods.filter(pred).length;
    const active = (p: Pod) => p.state === 'pending' || p.state === 'starting' || p.state === 'running';
    const states: [string, number][] = [
      ['running', count((p) => p.state === 'running')],
      ['starting', count((p) => p.state === 'pending' || p.state === 'starting')],
      ['failed', count((p) => p.state === 'failed')],
      ['exited', count((p) => p.state === 'exited')],
      ['stopped', count((p) => p.state === 'stopped')],
    ];
    // What the running pods' agents do (waiting for input first: those need someone).
    const agents = pods.filter((p) => p.state === 'running' && p.agent_state && AGENT_WORDS[p.agent_state])
      .sort((a, b) => Number(b.agent_state === 'waiting') - Number(a.agent_state === 'waiting') || (b.agent_state_ms || 0) - (a.agent_state_ms || 0));
    const live = runners.filter((r) => !r.revoked);
    const online = live.filter((r) => r.state === 'online');
    const capacity = online.reduce((n, r) => n + (r.capacity || 0), 0);
    const used = count((p) => active(p) && online.some((r) => r.id === p.runner));
    const failures = pods.filter((p) => p.state === 'failed' || (p.state === 'exited' && p.exit_code !== 0))
      .sort((a, b) => (b.ended_ms || b.created_ms) - (a.ended_ms || a.created_ms)).slice(0, 4);
    const byOwner = new Map<string, Pod[]>();
    for (const p of pods.filter(active)) byOwner.set(p.created_by, [...(byOwner.get(p.created_by) || []), p]);
    append(overview, [
      h('div', { class: 'ov-card', id: 'ov-states' }, h('h2', null, 'Pods'),
        h('div', { class: 'ov-states' }, states.map(([st, n]) => h('button', { type: 'button', class: 'link ov-state', 'data-state': st, 'data-count': String(n), title: `Show ${st} pods`, onclick: () => { selState.value = st === 'starting' ? '' : st; refilter(); } },
          h('span', { class: 'ov-n' }, String(n)), h('span', { class: 'muted' }, st)))),
        agents.length === 0 ? null : h('ul', { class: 'ov-list', id: 'ov-agents' }, agents.slice(0, 6).map((p) => h('li', { 'data-pod': p.id },
          h('a', { href: '#/pods/' + p.id, class: 'mono' }, p.id), ' ', agentBadge(p.agent_state))))),
      h('div', { class: 'ov-card', id: 'ov-runners' }, h('h2', null, 'Runners'),
        h('div', { class: 'ov-big', id: 'ov-runners-online', 'data-online': String(online.length), 'data-total': String(live.length) }, `${online.length} of ${live.length} online`),
        h('div', { class: 'muted small', id: 'ov-slots', 'data-used': String(used), 'data-capacity': String(capacity) }, capacity ? `${used} of ${capacity} pod slots in use` : `${used} pods on them`)),
      h('div', { class: 'ov-card', id: 'ov-failures' }, h('h2', null, 'Recent failures'),
        failures.length === 0 ? h('p', { class: 'muted small' }, 'None.') : h('ul', { class: 'ov-list' }, failures.map((p) => h('li', { 'data-pod': p.id },
          named(p.display_name, p.id, p.display_name ? '' : 'mono', 'a', { href: '#/pods/' + p.id }), trunc(failWords(p), 'muted'))))),
      h('div', { class: 'ov-card', id: 'ov-who' }, h('h2', null, 'Who is running what'),
        byOwner.size === 0 ? h('p', { class: 'muted small' }, 'Nobody right now.') : h('ul', { class: 'ov-list' }, Array.from(byOwner.entries()).sort().map(([owner, ps]) => h('li', { 'data-owner': owner },
          actorEl(owner, 'strong ov-owner'),
          trunc(ps.map((p) => p.display_name || `${commandLabel(p.command)} on ${repoName(p.repo)}`).join(', '), 'muted'))))),
      usageCard(pods),
    ]);
  }

  async function refresh(): Promise<void> {
    try {
      const [r, p, u] = await Promise.all([api<{ runners: Runner[] }>('GET', '/runners'), api<{ pods: Pod[] }>('GET', '/pods'),
        api<Usage>('GET', '/usage').catch(() => null), loadPeople(loads === 0)]);
      // An open rename keeps its row: the next refresh (3 s) redraws.
      if (stopped || editing()) return;
      runners = r.runners;
      usage = u;
      syncRunnerOptions();
      renderList(p.pods);
      overview.dataset.loaded = String(++loads);
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }
  let loads = 0;
  void refresh();
  const timer = setInterval(() => { if (!document.hidden) void refresh(); }, 3000);
  // Live: any pod or runner event refreshes at once (the poll above stays as the fallback).
  let ws: WebSocket | null = null;
  let soon: ReturnType<typeof setTimeout> | null = null;
  const connectEvents = () => {
    if (stopped) return;
    try {
      ws = new WebSocket(`${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/events`);
    } catch {
      return;
    }
    ws.onmessage = (m) => {
      if (typeof m.data !== 'string' || !/"action":"(pod|runner|model)\./.test(m.data.replace(/\s/g, ''))) return;
      if (!soon) soon = setTimeout(() => { soon = null; void refresh(); }, 200);
    };
    ws.onopen = () => { overview.dataset.live = '1'; };
    ws.onclose = () => {
      ws = null;
      delete overview.dataset.live;
    };
  };
  connectEvents();
  return () => {
    stopped = true;
    clearInterval(timer);
    if (soon) clearTimeout(soon);
    ws?.close();
  };
}

/** A repository the runner can fetch: a URL it speaks or an absolute path (a relative path
 * would be read as a URL and fail on the runner with "unsupported URL protocol"). */
export function repoProblem(v: string): string | null {
  if (/^(https?|ssh|git|file):\/\/\S+$/.test(v) || v.startsWith('/') || /^[\w.-]+@[\w.-]+:\S+$/.test(v)) return null;
  if (/\s/.test(v)) return 'The repository has a space in it: a URL or path has none.';
  return 'The repository is a git URL (https://, ssh://, git://, file://, user@host:path) or an absolute path on the runner (/srv/git/app).';
}

/** git's rules for ref names (git check-ref-format), the ones people trip over. */
export function refProblem(v: string): string | null {
  if (!v) return null;
  if (/\s/.test(v)) return 'has a space: git refs cannot.';
  if (/\.\.|[~^:?*[\\\x00-\x1f\x7f]|@\{/.test(v)) return 'has a character git does not allow in refs (.. ~ ^ : ? * [ \\ @{).';
  if (/^[/.-]|\/$|\.lock$|\/\.|\/\/|\.$/.test(v)) return 'cannot start with / . or -, end with / . or .lock, or have // or /. in it.';
  return null;
}

/** "user:alice" → "alice". */
export function who(actor: string): string {
  return (actor || '').replace(/^user:/, '') || '—';
}

function repoName(repo: string): string {
  return repo.replace(/\/+$/, '').replace(/\.git$/, '').split(/[/:]/).pop() || repo;
}

/** Why a pod ended badly, in words. */
export function failWords(p: Pod): string {
  if (p.state === 'failed') return p.reason ? 'failed: ' + p.reason : 'failed';
  if (p.state === 'exited') return exitWords(p.exit_code);
  return p.state;
}

export function stateDetail(p: Pod): HTMLElement | null {
  if (p.state === POD_STATE.exited) return h('span', { class: 'muted small detail' }, exitWords(p.exit_code));
  if ((p.state === POD_STATE.failed || p.state === POD_STATE.stopped) && p.reason) return h('div', { class: 'muted small detail', title: p.reason }, p.reason);
  return null;
}

export function commandLabel(cmd: string[]): string {
  const preset = PRESETS.find((p) => p.command.join('\0') === cmd.join('\0'));
  return preset ? preset.label.toLowerCase() : cmd.join(' ');
}

export async function downloadRecording(id: string, onError: (msg: string) => void): Promise<void> {
  try {
    const res = await fetch(`/api/v1/pods/${id}/recording`, { credentials: 'same-origin', cache: 'no-store' });
    if (!res.ok) throw await toError(res);
    const url = URL.createObjectURL(await res.blob());
    const a = h('a', { href: url, download: `${id}.cast` });
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    onError(errorText(e));
  }
}

/** Split a command line into words: spaces separate, '…' and "…" quote, \ escapes. */
export function splitWords(s: string): string[] | string {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: string | null = null;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === quote) quote = null;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) return `The command has an unclosed ${quote === '"' ? 'double' : 'single'} quote.`;
  if (inWord) out.push(cur);
  return out;
}
