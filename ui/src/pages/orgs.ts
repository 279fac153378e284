// Organizations: only the appliance administrator (the bootstrap admin, "superuser") sees this
// page in the navigation; it lists every organization and creates one with its first owner (a
// generated password is shown once).
import { api, can, errorText, nameProblem, Org } from '../api';
import { ago, append, clear, dateTime, emptyState, h, keepSecret, notice, secretBox } from '../dom';
import type { Ctx } from '../main';
import { field } from './login';
import { displayNameProblem, named, renameButton } from '../names';

export function orgsPage(ctx: Ctx): () => void {
  ctx.title('Organizations');
  if (!can.createOrgs(ctx.who)) {
    ctx.main.appendChild(emptyState('Only the appliance administrator manages organizations',
      `You belong to organization ${ctx.who.org}. Organizations are created by the appliance's bootstrap administrator.`,
      h('a', { href: '#/pods', class: 'btn btn-primary' }, 'Go to pods')));
    return () => {};
  }
  const messages = h('div', { class: 'messages' });
  const addPanel = h('section', { class: 'panel', hidden: true, 'aria-label': 'New organization' });
  const list = h('section', { class: 'panel' }, h('div', { class: 'loading' }, 'Loading organizations…'));
  const addBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'add-org' }, 'New organization');
  let stopped = false;
  addBtn.addEventListener('click', () => {
    // A shown-once secret stays until Done: a second click must not throw it away.
    if (!addPanel.hidden && addPanel.dataset.secret) {
      keepSecret(addPanel);
      return;
    }
    addPanel.hidden = !addPanel.hidden;
    if (!addPanel.hidden) renderAdd();
  });
  append(ctx.main, [
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, 'Each organization has its own users, teams, runners, pods and audit events; none sees another\'s.'),
      addBtn),
    messages, addPanel, list,
  ]);

  function renderAdd(): void {
    clear(addPanel);
    delete addPanel.dataset.secret;
    const id = h('input', { id: 'org-id', autocomplete: 'off', spellcheck: 'false', placeholder: 'research' });
    const name = h('input', { id: 'org-name', autocomplete: 'off', placeholder: 'Research lab' });
    const display = h('input', { id: 'org-display-name', autocomplete: 'off', placeholder: 'Laboratoire Ärø 🔬' });
    const owner = h('input', { id: 'org-owner', autocomplete: 'off', spellcheck: 'false', placeholder: 'alice' });
    const password = h('input', { id: 'org-password', type: 'password', autocomplete: 'new-password' });
    const err = h('div', { class: 'form-error', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create organization');
    const form = h('form', { class: 'form-grid', id: 'org-form', novalidate: true },
      h('h2', null, 'New organization'),
      field('ID', id, 'Short and permanent: users type it when they log in.'),
      field('Name', name, 'Optional: a readable name.'),
      field('Display name', display, 'Optional: what people see, any language, up to 64 characters.'),
      field('Owner', owner, 'The first user of the organization, with the owner role.'),
      field('Owner\'s password', password, 'Optional, at least 12 characters. Leave it empty for a random one, shown once.'),
      err,
      h('div', { class: 'actions span-all' },
        h('button', { type: 'button', class: 'btn', onclick: () => { addPanel.hidden = true; } }, 'Cancel'),
        submit));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      err.textContent = '';
      const fail = (m: string, el: HTMLInputElement) => { err.textContent = m; el.focus(); };
      if (!id.value.trim()) return fail('Enter an ID for the organization.', id);
      if (!owner.value.trim()) return fail('Enter the name of its owner.', owner);
      const badId = nameProblem(id.value.trim());
      if (badId) return fail('ID: ' + badId, id);
      const badOwner = nameProblem(owner.value.trim());
      if (badOwner) return fail('Owner: ' + badOwner, owner);
      const dn = display.value.trim();
      const badDn = dn ? displayNameProblem(dn) : null;
      if (badDn) return fail('Display name: ' + badDn, display);
      if (password.value && password.value.length < 12) return fail('A password needs at least 12 characters (or leave it empty).', password);
      const body: Record<string, string> = { id: id.value.trim(), owner: owner.value.trim() };
      if (name.value.trim()) body.name = name.value.trim();
      if (password.value) body.password = password.value;
      if (dn) body.display_name = dn;
      submit.disabled = true;
      try {
        const r = await api<{ id: string; owner: string; owner_password?: string }>('POST', '/orgs', body);
        clear(addPanel);
        const done = h('button', { type: 'button', class: 'btn btn-primary', onclick: () => { addPanel.hidden = true; delete addPanel.dataset.secret; } }, 'Done');
        append(addPanel, [h('h2', null, `Organization ${r.id} is created`)]);
        if (r.owner_password) {
          addPanel.dataset.secret = '1';
          const { box, copy } = secretBox(r.owner_password, 'new-owner-password', done);
          append(addPanel, [h('p', null, `Its owner ${r.owner} logs in with organization ${r.id} and this password, shown only now:`), box]);
          copy.focus();
        } else {
          append(addPanel, [h('p', null, `Its owner ${r.owner} logs in with organization ${r.id} and the password you set.`), h('div', { class: 'actions' }, done)]);
          done.focus();
        }
        void refresh();
      } catch (e2) {
        err.textContent = errorText(e2);
      } finally {
        submit.disabled = false;
      }
    });
    addPanel.appendChild(form);
    id.focus();
  }

  async function refresh(): Promise<void> {
    try {
      const r = await api<{ orgs: Org[] }>('GET', '/orgs');
      if (stopped) return;
      clear(list);
      if (r.orgs.length === 0) {
        list.appendChild(emptyState('No organizations', 'Create one with its first owner.'));
        return;
      }
      r.orgs.sort((a, b) => a.id.localeCompare(b.id));
      list.appendChild(h('table', { class: 'table', id: 'orgs-table' },
        h('thead', null, h('tr', null, ['Organization', 'Name', 'Created'].map((x) => h('th', { scope: 'col' }, x)))),
        h('tbody', null, r.orgs.map((o) => {
          const shownName = named(o.display_name, o.id, 'strong w-name');
          return h('tr', { 'data-org': o.id },
          h('td', { class: 'cell-name' },
            h('div', { class: 'name-line' }, shownName, o.id === ctx.who.org ? h('span', { class: 'chip chip-you' }, 'yours') : null,
              // Renaming is for the org's own admins and owners: yours, here.
              o.id === ctx.who.org ? renameButton(shownName, 'organization', o.display_name || '', '/orgs/' + encodeURIComponent(o.id), () => void refresh()) : null),
            o.display_name ? h('div', { class: 'muted small mono' }, o.id) : null),
          h('td', null, o.name || '—'),
          h('td', { class: 'small', title: dateTime(o.created_ms) }, ago(o.created_ms)));
        }))));
    } catch (e) {
      if (!stopped) {
        clear(messages);
        messages.appendChild(notice('error', errorText(e), () => {}));
      }
    }
  }
  void refresh();
  return () => {
    stopped = true;
  };
}
