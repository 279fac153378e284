// Pods: the list (newest first, refreshed every few seconds) with stop, delete, recording
// download and a link to each pod's terminal; "New pod" opens the create form (runner or
// labels, repo, base ref, branch, command from a preset or typed, env, limits, network).
import { api, errorText, Pod, POD_STATE, podEnded, ROLE_ADMIN, ROLE_MEMBER, Runner, toError } from '../api';
import { ago, append, badge, clear, confirmDialog, dateTime, h, notice } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';
import { parsePairs } from './runners';

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
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading pods…'));
  const newBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'new-pod' }, 'New pod');
  let runners: Runner[] = [];
  let stopped = false;

  newBtn.addEventListener('click', () => {
    formPanel.hidden = !formPanel.hidden;
    if (!formPanel.hidden) renderForm();
  });
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'A pod is one program (an agent or a shell) on a runner, in its own git worktree and sandbox.'),
      canWrite ? newBtn : h('span', { class: 'muted' }, 'Viewers can watch pods but not start them.')),
    messages, formPanel, list,
  ]);

  const say = (kind: 'error' | 'ok', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  function renderForm(): void {
    clear(formPanel);
    const runner = h('select', { id: 'pod-runner' }, h('option', { value: '' }, 'Any online runner'),
      runners.map((r) => h('option', { value: r.id, disabled: r.state !== 'online' }, `${r.hostname} (${r.state})`)));
    const labels = h('input', { id: 'pod-labels', placeholder: 'gpu=a100', autocomplete: 'off' });
    const repo = h('input', { id: 'pod-repo', placeholder: 'https://git.example.lan/team/app.git or /srv/git/app', required: true, autocomplete: 'off' });
    const baseRef = h('input', { id: 'pod-base-ref', placeholder: 'HEAD (the default branch)', autocomplete: 'off' });
    const branch = h('input', { id: 'pod-branch', placeholder: 'airmesh/pod-<id>', autocomplete: 'off' });
    const preset = h('select', { id: 'pod-preset' },
      PRESETS.map((p) => h('option', { value: p.id }, p.label)), h('option', { value: 'custom' }, 'Other command…'));
    const custom = h('input', { id: 'pod-command', placeholder: 'python3 -m http.server 8000', autocomplete: 'off' });
    const customField = field('Command', custom, 'Split into words like a shell would; quote words with spaces.');
    customField.hidden = true;
    preset.addEventListener('change', () => {
      customField.hidden = preset.value !== 'custom';
      if (!customField.hidden) custom.focus();
    });
    const env = h('textarea', { id: 'pod-env', rows: 3, placeholder: 'OPENAI_API_BASE=http://llm.lan:8000/v1', spellcheck: 'false' });
    const memory = h('input', { id: 'pod-memory', placeholder: '2G', autocomplete: 'off' });
    const pids = h('input', { id: 'pod-pids', type: 'number', min: '0', placeholder: '512' });
    const cpu = h('input', { id: 'pod-cpu', type: 'number', min: '0', step: '0.25', placeholder: '2' });
    const network = h('select', { id: 'pod-network' },
      h('option', { value: 'none' }, 'None (loopback only)'),
      h('option', { value: 'host' }, "Host (the runner's network)"));
    const keep = h('input', { id: 'pod-keep', type: 'checkbox' });
    const err = h('div', { class: 'form-error span-all', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Start pod');
    const form = h('form', { class: 'form-grid', id: 'pod-form', novalidate: true },
      h('h2', { class: 'span-all' }, 'New pod'),
      field('Repository', repo, 'A git URL or path the runner can reach.'),
      field('Program', preset),
      customField,
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
      body.repo = repo.value.trim();
      if (preset.value === 'custom') {
        const words = splitWords(custom.value);
        if (typeof words === 'string') return fail(words, custom);
        if (words.length === 0) return fail('Enter the command to run.', custom);
        body.command = words;
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
      body.network = network.value;
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
    const ok = await confirmDialog(`Stop pod ${p.id}?`, 'The program gets SIGTERM, then SIGKILL after 5 seconds. Its branch and recording are kept.', 'Stop pod');
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

  function renderList(pods: Pod[]): void {
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
    pods.sort((a, b) => b.created_ms - a.created_ms);
    const host = (id: string) => runners.find((r) => r.id === id)?.hostname || id || '—';
    append(list, [h('table', { class: 'table', id: 'pods-table' },
      h('thead', null, h('tr', null, ['Pod', 'State', 'Command', 'Repository', 'Runner', 'Started', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, pods.map((p) => h('tr', { 'data-pod': p.id },
        h('td', null, h('a', { href: '#/pods/' + p.id, class: 'strong mono' }, p.id), h('div', { class: 'muted small mono' }, p.branch)),
        h('td', null, badge(p.state), stateDetail(p)),
        h('td', { class: 'mono small cmd-cell', title: p.command.join(' ') }, commandLabel(p.command)),
        h('td', { class: 'small ellipsis', title: p.repo }, p.repo),
        h('td', { class: 'small' }, host(p.runner)),
        h('td', { class: 'small', title: dateTime(p.started_ms || p.created_ms) }, ago(p.started_ms || p.created_ms)),
        h('td', { class: 'row-actions' },
          h('a', { href: '#/pods/' + p.id, class: 'btn btn-small' }, podEnded(p.state) ? 'Output' : 'Terminal'),
          p.recording ? h('button', { type: 'button', class: 'btn btn-small', onclick: () => void downloadRecording(p.id, (m) => say('error', m)) }, 'Recording') : null,
          canWrite && !podEnded(p.state) ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void stop(p) }, 'Stop') : null,
          canWrite && podEnded(p.state) ? h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', onclick: () => void remove(p) }, 'Delete') : null))))),
    ]);
  }

  async function refresh(): Promise<void> {
    try {
      const [r, p] = await Promise.all([api<{ runners: Runner[] }>('GET', '/runners'), api<{ pods: Pod[] }>('GET', '/pods')]);
      if (stopped) return;
      runners = r.runners;
      renderList(p.pods);
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }
  void refresh();
  const timer = setInterval(() => { if (!document.hidden) void refresh(); }, 3000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

export function stateDetail(p: Pod): HTMLElement | null {
  if (p.state === POD_STATE.exited) return h('span', { class: 'muted small detail' }, `code ${p.exit_code ?? '?'}`);
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
