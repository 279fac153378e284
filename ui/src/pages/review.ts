// Review of a pod's branch (#/pods/ID/review, issue 13): the commits and the diff against its
// base, as the pod's runner computed them from its mirror (GET /api/v1/pods/{id}/review), drawn
// by diff2html (line by line). Click a line to comment on it; the comments collected here go
// out together as ONE prompt (POST .../review/comments): typed into the pod when it runs, or,
// when it ended, the first prompt of a new pod that continues the branch. "Approve & push" asks
// the runner to push the branch with the credentials it holds (POST .../review/approve): the
// badge then says approved (pushed) or ready (the runner holds none for that remote).
// The diff is the agent's text: diff2html escapes it, and its HTML goes through DOMPurify into
// a fragment before it touches the page; it carries no inline styles (the CSP allows none).
import { html as diffHtml } from 'diff2html';
import DOMPurify from 'dompurify';
import { api, errorText, Pod, ROLE_MEMBER } from '../api';
import { append, badge, clear, dateTime, h, notice } from '../dom';
import type { Ctx } from '../main';

interface ReviewCommit {
  id: string;
  author: string;
  time_ms: number;
  summary: string;
}

export interface Review {
  pod: string;
  state: string;
  branch: string;
  base_ref: string;
  base_commit: string;
  head_commit: string;
  commits: ReviewCommit[];
  diff: string;
  files: number;
  additions: number;
  deletions: number;
  truncated: boolean;
  review_state: string;
  pushed_to: string;
  pushed_commit: string;
}

interface Comment {
  file: string;
  line: number;
  side: 'new' | 'old';
  text: string;
}

const stateWords: Record<string, string> = { '': 'not reviewed', approved: 'approved', ready: 'ready' };

export function reviewBadge(state: string): HTMLElement {
  const el = badge(stateWords[state] ?? state, 'review' + (state || 'none'));
  el.id = 'review-state';
  return el;
}

/** The file a diff2html file block shows (a rename "a → b" is b). */
function fileOf(wrapper: Element): string {
  const name = (wrapper.querySelector('.d2h-file-name')?.textContent || '').trim();
  const arrow = name.lastIndexOf('→');
  return (arrow >= 0 ? name.slice(arrow + 1) : name).trim();
}

/** Mark every code row with the file, line and side it stands for (data-file/-line/-side). */
function tagRows(root: HTMLElement): void {
  for (const wrapper of Array.from(root.querySelectorAll('.d2h-file-wrapper'))) {
    const file = fileOf(wrapper);
    for (const tr of Array.from(wrapper.querySelectorAll('tr'))) {
      const n2 = (tr.querySelector('.line-num2')?.textContent || '').trim();
      const n1 = (tr.querySelector('.line-num1')?.textContent || '').trim();
      const line = n2 || n1;
      if (!/^\d+$/.test(line)) continue;
      tr.setAttribute('data-file', file);
      tr.setAttribute('data-line', line);
      tr.setAttribute('data-side', n2 ? 'new' : 'old');
      tr.classList.add('review-line');
      tr.setAttribute('title', `Comment on ${file}:${line}`);
    }
  }
}

export function reviewPage(ctx: Ctx, id: string): () => void {
  ctx.title('Review ' + id);
  const canWrite = ctx.who.role >= ROLE_MEMBER;
  let disposed = false;
  let pending: Comment[] = [];
  let target: Omit<Comment, 'text'> | null = null;

  const messages = h('div', { class: 'messages', id: 'review-messages' });
  const stateBox = h('span', { class: 'review-badge-box' });
  const heading = h('div', { class: 'review-head-text' });
  const summary = h('p', { class: 'muted', id: 'review-summary-line' }, 'Asking the pod\'s runner for the diff…');
  const commits = h('ol', { class: 'review-commits', id: 'review-commits', 'aria-label': 'Commits' });
  const diffBox = h('div', { class: 'review-diff', id: 'review-diff', 'aria-label': 'Diff' });
  const where = h('div', { class: 'review-target', id: 'review-target' }, 'Click a line of the diff to comment on it.');
  const text = h('textarea', { id: 'review-comment-text', rows: 3, placeholder: 'Your comment on this line', 'aria-label': 'Comment', disabled: true });
  const addBtn = h('button', { type: 'submit', class: 'btn', id: 'review-comment-add', disabled: true }, 'Add comment');
  const list = h('ul', { class: 'review-pending', id: 'review-pending', 'aria-label': 'Comments to send' });
  const none = h('p', { class: 'muted small', id: 'review-none' }, 'None yet: click a line of the diff to comment on it.');
  const overall = h('textarea', { id: 'review-summary', rows: 2, placeholder: 'Overall remarks (optional)', 'aria-label': 'Overall remarks' });
  const sendBtn = h('button', { type: 'button', class: 'btn btn-primary', id: 'review-send', disabled: true }, 'Send comments');
  const approveBtn = h('button', { type: 'button', class: 'btn', id: 'review-approve' }, 'Approve & push');
  const panel = h('aside', { class: 'review-panel', 'aria-label': 'Review comments', hidden: !canWrite },
    h('form', { class: 'review-comment-form', id: 'review-comment-form' }, where, text, addBtn),
    h('h3', null, 'Comments'), list, none, overall,
    h('div', { class: 'actions' }, sendBtn, approveBtn));
  append(ctx.main, [
    h('div', { class: 'review-head' },
      h('a', { href: '#/pods/' + encodeURIComponent(id), class: 'back', id: 'review-back' }, '← Pod ' + id),
      heading, stateBox),
    messages,
    summary,
    h('div', { class: 'review-layout' },
      h('div', { class: 'review-main' }, h('h3', null, 'Commits'), commits, h('h3', null, 'Changes'), diffBox),
      panel),
  ]);

  const say = (kind: 'error' | 'ok' | 'info', msg: string | Node) => {
    clear(messages);
    messages.appendChild(notice(kind, msg, () => {}));
  };

  function drawPending(): void {
    clear(list);
    pending.forEach((c, i) =>
      list.appendChild(h('li', { class: 'review-pending-item' },
        h('code', null, `${c.file}:${c.line}`), ' ', h('span', null, c.text), ' ',
        h('button', { type: 'button', class: 'btn btn-small', 'aria-label': 'Remove comment', onclick: () => { pending.splice(i, 1); drawPending(); } }, 'Remove'))));
    none.hidden = pending.length > 0;
    sendBtn.disabled = pending.length === 0;
    sendBtn.textContent = pending.length ? `Send ${pending.length} comment${pending.length > 1 ? 's' : ''}` : 'Send comments';
  }

  function draw(r: Review): void {
    clear(heading);
    append(heading, [h('h2', null, 'Review of ', h('code', { id: 'review-branch' }, r.branch)),
      h('div', { class: 'muted small' }, `against ${r.base_ref} (${r.base_commit.slice(0, 10)}) · pod ${r.state}`)]);
    clear(stateBox);
    stateBox.appendChild(reviewBadge(r.review_state));
    if (r.review_state === 'approved')
      stateBox.appendChild(h('span', { class: 'muted small', id: 'review-pushed' }, ` pushed ${r.pushed_commit.slice(0, 10)} to ${r.pushed_to}`));
    summary.textContent = `${r.commits.length} commit${r.commits.length === 1 ? '' : 's'}, ${r.files} file${r.files === 1 ? '' : 's'} changed, +${r.additions} −${r.deletions}` +
      (r.truncated ? ' (the diff is cut: too large to show whole)' : '');
    clear(commits);
    for (const c of r.commits)
      commits.appendChild(h('li', { class: 'review-commit' },
        h('code', { title: c.id }, c.id.slice(0, 10)), ' ', h('strong', null, c.summary), ' ',
        h('span', { class: 'muted small' }, `${c.author} · ${dateTime(c.time_ms)}`)));
    if (!r.commits.length) commits.appendChild(h('li', { class: 'muted' }, 'No commits on this branch yet.'));
    clear(diffBox);
    if (!r.diff) {
      diffBox.appendChild(h('p', { class: 'muted' }, 'No changes.'));
      return;
    }
    const html = diffHtml(r.diff, { drawFileList: true, outputFormat: 'line-by-line', matching: 'none' });
    diffBox.appendChild(DOMPurify.sanitize(html, { RETURN_DOM_FRAGMENT: true, FORBID_TAGS: ['style', 'form', 'input'], FORBID_ATTR: ['style'] }));
    tagRows(diffBox);
  }

  async function load(): Promise<void> {
    try {
      const r = await api<Review>('GET', `/pods/${encodeURIComponent(id)}/review`);
      if (!disposed) draw(r);
    } catch (e) {
      if (!disposed) {
        summary.textContent = '';
        say('error', errorText(e));
      }
    }
  }

  diffBox.addEventListener('click', (ev) => {
    // diff2html's file list links to "#d2h-…" anchors: scroll there instead of letting the
    // hash router leave the page.
    const link = (ev.target as Element).closest('a[href^="#d2h-"]');
    if (link) {
      ev.preventDefault();
      diffBox.querySelector('#' + CSS.escape(link.getAttribute('href')!.slice(1)))?.scrollIntoView({ block: 'start' });
      return;
    }
    if (!canWrite) return;
    const tr = (ev.target as Element).closest('tr.review-line');
    if (!tr) return;
    diffBox.querySelector('tr.review-selected')?.classList.remove('review-selected');
    tr.classList.add('review-selected');
    target = { file: tr.getAttribute('data-file') || '', line: Number(tr.getAttribute('data-line')), side: tr.getAttribute('data-side') === 'old' ? 'old' : 'new' };
    where.textContent = `Comment on ${target.file}:${target.line}${target.side === 'old' ? ' (old side)' : ''}`;
    text.disabled = false;
    addBtn.disabled = false;
    text.focus();
  });

  panel.querySelector('form')!.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = text.value.trim();
    if (!target || !t) return;
    pending.push({ ...target, text: t });
    text.value = '';
    drawPending();
  });

  sendBtn.addEventListener('click', async () => {
    if (!pending.length) return;
    sendBtn.disabled = true;
    try {
      const body: { comments: Comment[]; summary?: string } = { comments: pending };
      if (overall.value.trim()) body.summary = overall.value.trim();
      const res = await api<{ delivered: string; new_pod?: Pod }>('POST', `/pods/${encodeURIComponent(id)}/review/comments`, body);
      pending = [];
      overall.value = '';
      drawPending();
      if (res.delivered === 'new_pod' && res.new_pod)
        say('ok', h('span', { id: 'review-sent' }, 'The pod had ended: started ',
          h('a', { href: '#/pods/' + res.new_pod.id, id: 'review-new-pod' }, res.new_pod.id),
          ' on the same branch with your comments as its prompt.'));
      else say('ok', h('span', { id: 'review-sent' }, 'Sent to the pod as one prompt.'));
    } catch (e) {
      say('error', errorText(e));
      sendBtn.disabled = pending.length === 0;
    }
  });

  approveBtn.addEventListener('click', async () => {
    approveBtn.disabled = true;
    try {
      const res = await api<{ review_state: string; pushed_to: string; pushed_commit: string }>('POST', `/pods/${encodeURIComponent(id)}/review/approve`, {});
      say('ok', res.review_state === 'approved'
        ? `Approved: pushed ${res.pushed_commit.slice(0, 10)} to ${res.pushed_to}.`
        : 'Approved and marked ready: the runner holds no credentials to push to this repository.');
      await load();
    } catch (e) {
      say('error', errorText(e));
    } finally {
      approveBtn.disabled = false;
    }
  });

  drawPending();
  void load();
  return () => {
    disposed = true;
  };
}
