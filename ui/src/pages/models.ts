// Models: the organization's model endpoints (on-prem servers speaking the OpenAI or the
// Anthropic API) with their last self-test: reachable, and per model whether a completion and
// a tool call worked (tools ✓ / ✗, the reason on hover and below). Everyone sees the list;
// admins and owners add endpoints (the key is a password field, sent once and never shown
// again: no answer carries it), re-run the self-test and remove endpoints.
import { api, errorText, nameProblem, ROLE_ADMIN } from '../api';
import { ago, append, badge, clear, confirmDialog, dateTime, emptyState, h, notice, trunc } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';

interface ModelCheck {
  model: string;
  completion: boolean;
  tool_call: boolean;
  error: string;
  latency_ms: number;
}
interface SelfTest {
  time_ms: number;
  reachable: boolean;
  error: string;
  models_listed: string[];
  checks: ModelCheck[];
}
interface ModelEndpoint {
  name: string;
  api: 'openai' | 'anthropic';
  url: string;
  models: string[];
  has_key: boolean;
  has_ca: boolean;
  created_ms: number;
  created_by: string;
  last_test: SelfTest | null;
}

const URL_HINT: Record<string, string> = {
  openai: 'The base URL as OPENAI_BASE_URL takes it, with /v1, e.g. http://vllm.lan:8000/v1',
  anthropic: 'The base URL as ANTHROPIC_BASE_URL takes it, without /v1, e.g. http://claude-gw.lan:8080',
};

/** The self-test as badges: unreachable, or per model "name tools ✓/✗"; reasons below. */
function testView(t: SelfTest | null): HTMLElement {
  if (!t) return h('span', { class: 'muted' }, 'not tested');
  if (!t.reachable) {
    return h('div', { class: 'model-test' },
      h('span', { class: 'chips' }, badge('unreachable', 'failed')),
      h('div', { class: 'small model-test-error' }, t.error));
  }
  const chips = t.checks.map((c) => {
    const ok = c.completion && c.tool_call;
    const label = `${c.model} · tools ${c.tool_call ? '✓' : '✗'}`;
    const el = h('span', {
      class: 'badge model-check ' + (ok ? 'badge-ok' : c.completion ? 'badge-locked' : 'badge-failed'),
      'data-model': c.model, 'data-tools': c.tool_call ? 'yes' : 'no',
      title: (c.completion ? `completion ok, ${c.latency_ms} ms` : 'completion failed') + (c.error ? ': ' + c.error : ''),
    }, label);
    return el;
  });
  const errors = t.checks.filter((c) => c.error).map((c) => h('li', null, h('strong', null, c.model), ': ', c.error));
  return h('div', { class: 'model-test' },
    h('span', { class: 'chips' }, chips.length ? chips : h('span', { class: 'muted' }, 'no models tested')),
    t.error ? h('div', { class: 'small model-test-error' }, t.error) : null,
    errors.length ? h('ul', { class: 'small model-test-errors' }, errors) : null);
}

export function modelsPage(ctx: Ctx): () => void {
  ctx.title('Models');
  const admin = ctx.who.role >= ROLE_ADMIN;
  const messages = h('div', { class: 'messages' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading model endpoints…'));
  let stopped = false;
  const say = (kind: 'error' | 'ok' | 'warn', text: string) => {
    clear(messages);
    messages.appendChild(notice(kind, text, () => {}));
  };

  // ---- the add form (admins) ----
  const name = h('input', { id: 'model-name', autocomplete: 'off', spellcheck: 'false', placeholder: 'vllm', maxlength: '64' });
  const apiSel = h('select', { id: 'model-api' },
    h('option', { value: 'openai' }, 'OpenAI-compatible'),
    h('option', { value: 'anthropic' }, 'Anthropic-compatible'));
  const url = h('input', { id: 'model-url', type: 'url', autocomplete: 'off', spellcheck: 'false', placeholder: 'http://vllm.lan:8000/v1' });
  const key = h('input', { id: 'model-key', type: 'password', autocomplete: 'new-password', spellcheck: 'false', placeholder: 'optional' });
  const models = h('input', { id: 'model-models', autocomplete: 'off', spellcheck: 'false', placeholder: 'qwen2.5-coder-32b, llama3.1-8b' });
  const ca = h('textarea', { id: 'model-ca', rows: '3', spellcheck: 'false', placeholder: '-----BEGIN CERTIFICATE-----' });
  const err = h('div', { class: 'form-error span-all', role: 'alert' });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'add-model' }, 'Add and test');
  const urlField = field('Base URL', url, URL_HINT.openai);
  const urlHint = urlField.querySelector('.hint') as HTMLElement;
  apiSel.addEventListener('change', () => {
    urlHint.textContent = URL_HINT[apiSel.value];
    url.placeholder = apiSel.value === 'openai' ? 'http://vllm.lan:8000/v1' : 'http://claude-gw.lan:8080';
  });
  const form = h('form', { class: 'panel form-grid', id: 'model-form', novalidate: true, hidden: true, 'aria-label': 'Add a model endpoint' },
    h('h2', null, 'Add a model endpoint'),
    h('p', { class: 'muted' }, 'Adding runs a self-test: is it reachable, which models it lists, and per model a tiny completion and a tool call. The endpoint is saved even when the test fails.'),
    field('Name', name, 'Lowercase letters, digits and . _ -'),
    field('API', apiSel, 'vLLM, Ollama, TGI, LM Studio and most gateways speak the OpenAI API.'),
    urlField,
    field('API key', key, 'Kept on the appliance only: never shown again, never sent to pods.'),
    field('Models', models, 'Comma-separated. Empty: whatever the server lists.'),
    field('CA certificate (PEM)', ca, 'Only for an https URL signed by your own CA.'),
    err,
    h('div', { class: 'actions span-all' },
      h('button', { type: 'button', class: 'btn', onclick: () => { form.hidden = true; } }, 'Cancel'),
      submit));
  const openForm = () => {
    form.hidden = false;
    name.focus();
  };
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-model-open', onclick: openForm }, 'Add an endpoint');
  let adding = false;
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (adding) return;
    err.textContent = '';
    const n = name.value.trim();
    const problem = n ? nameProblem(n) : 'Enter a name for the endpoint.';
    if (problem) {
      err.textContent = problem;
      name.focus();
      return;
    }
    const u = url.value.trim();
    if (!/^https?:\/\/[^/?#@\s]+/.test(u)) {
      err.textContent = 'Enter the base URL: http:// or https://, a host and an optional port and path.';
      url.focus();
      return;
    }
    const body: Record<string, unknown> = { name: n, api: apiSel.value, url: u };
    if (key.value) body.key = key.value;
    if (ca.value.trim()) body.ca_pem = ca.value.trim() + '\n';
    const ms = models.value.split(',').map((m) => m.trim()).filter((m) => m);
    if (ms.length) body.models = ms;
    adding = true;
    submit.disabled = true;
    submit.textContent = 'Adding and testing…';
    try {
      const ep = await api<ModelEndpoint>('POST', '/models', body);
      key.value = ''; // sent once; the appliance keeps it
      name.value = '';
      url.value = '';
      form.hidden = true;
      models.value = '';
      ca.value = '';
      const t = ep.last_test;
      if (t && t.reachable) say('ok', `Endpoint ${ep.name} is added and tested. Its key stays on the appliance.`);
      else say('warn', `Endpoint ${ep.name} is added, but the self-test could not reach it: ${t ? t.error : ''}`);
      await refresh();
    } catch (e2) {
      err.textContent = errorText(e2);
    } finally {
      adding = false;
      submit.disabled = false;
      submit.textContent = 'Add and test';
    }
  });

  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Model servers your pods reach through the appliance\'s gateway. Keys stay on the appliance.'),
      admin ? addBtn : h('span', { class: 'muted', id: 'models-readonly' }, 'Adding, testing and removing endpoints needs the admin role.')),
    messages, admin ? form : null, list,
  ]);

  async function change(what: string, fn: () => Promise<unknown>, ok: string): Promise<void> {
    try {
      await fn();
      say('ok', ok);
    } catch (e) {
      say('error', `${what}: ${errorText(e)}`);
    }
    void refresh();
  }

  function render(eps: ModelEndpoint[]): void {
    clear(list);
    if (eps.length === 0) {
      list.appendChild(emptyState('No model endpoints yet', admin ? 'Add your on-prem model server: pods then reach it through the gateway.' : 'An admin adds the organization\'s model servers here.',
        admin ? h('button', { type: 'button', class: 'btn btn-primary', onclick: openForm }, 'Add an endpoint') : null));
      return;
    }
    const rows = eps.map((m) => {
      const testBtn = h('button', { type: 'button', class: 'btn btn-small', 'data-action': 'test' }, 'Test');
      testBtn.addEventListener('click', () => {
        testBtn.disabled = true;
        testBtn.textContent = 'Testing…';
        void change('Testing ' + m.name, () => api('POST', `/models/${encodeURIComponent(m.name)}/test`), `Endpoint ${m.name} is tested again.`);
      });
      return h('tr', { 'data-model-endpoint': m.name },
        h('td', { class: 'strong' }, m.name),
        h('td', { class: 'nowrap' }, m.api),
        h('td', { class: 'model-url' }, trunc(m.url), m.has_ca ? h('div', { class: 'small muted' }, 'own CA') : null),
        h('td', null, m.has_key ? 'set' : h('span', { class: 'muted' }, 'none')),
        h('td', null, m.models.length ? h('span', { class: 'chips' }, m.models.map((x) => h('span', { class: 'chip' }, x))) : h('span', { class: 'muted' }, 'any listed')),
        h('td', { class: 'model-self-test' }, testView(m.last_test)),
        h('td', { title: m.last_test ? dateTime(m.last_test.time_ms) : '' }, h('span', { class: 'small' }, m.last_test ? ago(m.last_test.time_ms) : '—')),
        admin ? h('td', { class: 'row-actions' }, testBtn,
          h('button', { type: 'button', class: 'btn btn-small btn-danger-outline', 'data-action': 'remove', onclick: async () => {
            if (await confirmDialog(`Remove endpoint ${m.name}?`, 'Pods can no longer use its models through the gateway. Its key is deleted from the appliance.', 'Remove')) {
              void change('Removing ' + m.name, () => api('DELETE', `/models/${encodeURIComponent(m.name)}`), `Endpoint ${m.name} is removed.`);
            }
          } }, 'Remove')) : null);
    });
    const heads = ['Name', 'API', 'URL', 'Key', 'Models', 'Self-test', 'Tested'].concat(admin ? [''] : []);
    list.appendChild(h('table', { class: 'table', id: 'models-table' },
      h('thead', null, h('tr', null, heads.map((x) => h('th', { scope: 'col' }, x)))),
      h('tbody', null, rows)));
  }

  async function refresh(): Promise<void> {
    try {
      const r = await api<{ models: ModelEndpoint[] }>('GET', '/models');
      if (!stopped) render(r.models);
    } catch (e) {
      if (!stopped) say('error', errorText(e));
    }
  }
  void refresh();
  return () => {
    stopped = true;
  };
}
