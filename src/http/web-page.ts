/**
 * GET /web for a browser: one self-contained HTML page (inline CSS and JS, the machine diagram as
 * inline SVG, no external assets, so it works in an offline container) that shows where the client
 * is and highlights its current state in the diagram. It polls `state.json` beside itself; the
 * URL is relative to wherever the page is served (`/web`, or `/` on the platform's web port).
 */
import { createHash } from 'node:crypto';
import { MACHINE_SVG } from '../visual/machine-svg.ts';
import type { WebView } from '../visual/web-view.ts';

/** How often the page asks for the state, in milliseconds. */
export const POLL_INTERVAL_MS = 1000;

/** The JSON the page polls, relative to the page's own path. */
export const WEB_STATE_FILE = 'state.json';

const escapeHtml = (text: string): string =>
  text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** JSON inside a <script> element: `<` escaped so no `</script>` can end it early. */
const scriptJson = (value: unknown): string => JSON.stringify(value).replace(/</g, '\\u003c');

const percent = (progress: number | null): string =>
  progress === null ? '–' : `${Math.round(progress * 100)}%`;

function roleText(view: WebView): string {
  return view.role ?? 'not set up';
}

function nextText(view: WebView): string {
  if (view.next === null) return 'nothing queued';
  const to =
    view.next.destination !== null
      ? `to ${String(view.next.destination)}`
      : view.role === 'coordinator'
        ? 'to every participant'
        : 'to the coordinator';
  return `next: ${view.next.memo} ${to}`;
}

function runText(view: WebView): string {
  if (view.run === 'error') return 'error';
  if (view.finished) return 'finished';
  return view.run ?? 'waiting';
}

// The browser side, kept to ES2017 and the DOM; it mirrors the server-side text functions above.
const SCRIPT = `
(function () {
  'use strict';
  var interval = ${POLL_INTERVAL_MS};
  var base = location.pathname.slice(-1) === '/' ? location.pathname : location.pathname + '/';
  var source = base + '${WEB_STATE_FILE}';
  var figure = document.getElementById('diagram');

  function field(name) { return document.querySelector('[data-field="' + name + '"]'); }
  function set(name, text) {
    var element = field(name);
    if (element !== null && element.textContent !== text) element.textContent = text;
  }
  function percent(progress) { return progress === null ? '\\u2013' : Math.round(progress * 100) + '%'; }
  function next(view) {
    if (view.next === null) return 'nothing queued';
    var to = view.next.destination !== null ? 'to ' + view.next.destination
      : view.role === 'coordinator' ? 'to every participant' : 'to the coordinator';
    return 'next: ' + view.next.memo + ' ' + to;
  }
  function run(view) {
    if (view.run === 'error') return 'error';
    if (view.finished) return 'finished';
    return view.run === null ? 'waiting' : view.run;
  }

  function highlight(view) {
    figure.querySelectorAll('.active, .current').forEach(function (element) {
      element.classList.remove('active', 'current');
    });
    view.active.forEach(function (path, index) {
      var element = document.getElementById('state:' + path);
      if (element === null) return;
      element.classList.add('active');
      if (index === view.active.length - 1) element.classList.add('current');
    });
  }

  function render(view) {
    var role = view.role === null ? 'not set up' : view.role;
    set('role', role);
    document.body.dataset.role = view.role === null ? 'none' : view.role;
    document.body.dataset.run = run(view);
    figure.className = view.role === null ? '' : 'role-' + view.role;
    set('id', view.id === null ? '\\u2013' : String(view.id));
    set('clients', view.clients === null ? '\\u2013' : String(view.clients));
    set('run', run(view));
    set('state', view.state);
    set('description', view.description === null ? '' : view.description);
    set('round', String(view.round));
    set('progress', percent(view.progress));
    field('progress-bar').style.width = view.progress === null ? '0' : Math.round(view.progress * 100) + '%';
    set('message', view.message);
    set('inbox', String(view.inbox));
    set('outbox', String(view.outbox));
    set('next', next(view));
    set('updated', new Date().toLocaleTimeString());
    document.title = view.state + ' \\u00b7 ' + role + ' \\u00b7 FeatureCloud client';
    highlight(view);
  }

  function connected(live) {
    set('link', live ? 'live' : 'no answer, retrying');
    document.body.dataset.link = live ? 'live' : 'lost';
  }

  function poll() {
    fetch(source, { cache: 'no-store', headers: { accept: 'application/json' } })
      .then(function (response) {
        if (!response.ok) throw new Error('HTTP ' + response.status);
        return response.json();
      })
      .then(function (view) { render(view); connected(true); }, function () { connected(false); })
      .then(function () { setTimeout(poll, interval); });
  }

  render(JSON.parse(document.getElementById('initial-view').textContent));
  setTimeout(poll, interval);
})();
`;

const sha256 = (text: string): string => `'sha256-${createHash('sha256').update(text).digest('base64')}'`;


const STYLE = `
:root {
  --ink: #0f172a; --muted: #64748b; --line: #e2e8f0; --panel: #ffffff; --page: #f1f5f9;
  --coordinator: #2563eb; --coordinator-soft: #dbeafe; --participant: #16a34a; --participant-soft: #dcfce7;
  --error: #dc2626; --error-soft: #fee2e2; --accent: #d97706; --accent-soft: #fef3c7;
}
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); background: var(--page); }
header { display: flex; flex-wrap: wrap; align-items: center; gap: 10px 14px; padding: 14px 24px; background: var(--ink); color: #f8fafc; }
header h1 { margin: 0 8px 0 0; font-size: 17px; font-weight: 600; letter-spacing: .01em; }
header .who { color: #cbd5e1; }
header code { color: #f8fafc; }
.pill { display: inline-block; padding: 2px 10px; border-radius: 999px; font-size: 12px; font-weight: 600; background: #334155; color: #e2e8f0; }
body[data-role="coordinator"] .pill.role { background: var(--coordinator-soft); color: #1e3a8a; }
body[data-role="participant"] .pill.role { background: var(--participant-soft); color: #14532d; }
body[data-run="running"] .pill.run { background: var(--accent-soft); color: #78350f; }
body[data-run="finished"] .pill.run { background: var(--participant-soft); color: #14532d; }
body[data-run="error"] .pill.run { background: var(--error-soft); color: #7f1d1d; }
.link { margin-left: auto; font-size: 12px; color: #94a3b8; }
.link::before { content: ""; display: inline-block; width: 8px; height: 8px; margin-right: 6px; border-radius: 50%; background: #22c55e; vertical-align: 1px; }
body[data-link="lost"] .link::before { background: var(--error); }
main { padding: 20px 24px 8px; max-width: 1280px; margin: 0 auto; }
.cards { display: grid; grid-template-columns: repeat(6, minmax(0, 1fr)); gap: 12px; }
.card { background: var(--panel); border: 1px solid var(--line); border-radius: 10px; padding: 12px 14px; min-width: 0; }
.card.state, .card.message { grid-column: span 4; }
.card h2 { margin: 0 0 4px; font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: .06em; color: var(--muted); }
.card strong { font-size: 20px; font-weight: 600; }
.card.state code { font-size: 17px; font-weight: 600; color: #92400e; background: var(--accent-soft); padding: 1px 8px; border-radius: 6px; }
.card p, .card small { display: block; margin: 6px 0 0; color: var(--muted); font-size: 12.5px; }
.card.message strong { font-size: 16px; }
body[data-run="error"] .card.message strong { color: var(--error); }
.bar { height: 8px; margin: 8px 0 6px; border-radius: 4px; background: var(--line); overflow: hidden; }
.bar span { display: block; height: 100%; width: 0; background: linear-gradient(90deg, #f59e0b, #d97706); transition: width .4s ease; }
body[data-run="finished"] .bar span { background: var(--participant); }
figure { margin: 16px 0 0; padding: 12px; background: var(--panel); border: 1px solid var(--line); border-radius: 10px; }
figure svg { display: block; width: 100%; height: auto; max-height: 78vh; }
figure .state { transition: opacity .3s; }
figure.role-coordinator .participant-only, figure.role-participant .coordinator-only { opacity: .35; }
figure .state.active path { stroke: var(--accent); stroke-width: 2.5; }
figure .state.current path:not([fill="none"]) { fill: #fde68a; }
figure .state.current path { stroke-width: 3.5; animation: pulse 1.6s ease-in-out infinite; }
figure .state.current { opacity: 1; }
figcaption { margin-top: 8px; color: var(--muted); font-size: 12.5px; }
footer { max-width: 1280px; margin: 0 auto; padding: 8px 24px 24px; color: var(--muted); font-size: 12.5px; }
@keyframes pulse { 50% { stroke: #f59e0b; stroke-opacity: .55; } }
@media (max-width: 860px) { .cards { grid-template-columns: repeat(2, minmax(0, 1fr)); } .card.state, .card.message { grid-column: span 2; } }
`;

/** Only this page's own style and script, and its own origin: nothing can load from elsewhere. */
export const WEB_PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256(STYLE)}`,
  `script-src ${sha256(SCRIPT)}`,
  "connect-src 'self'",
  'img-src data:',
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

/** The whole page, filled in with the state at the time of the request. */
export function webPage(view: WebView): string {
  const text = (value: string) => escapeHtml(value);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${text(view.state)} · ${text(roleText(view))} · FeatureCloud client</title>
<style>${STYLE}</style>
</head>
<body data-role="${view.role ?? 'none'}" data-run="${text(runText(view))}" data-link="live">
<header>
  <h1>FeatureCloud client</h1>
  <span class="pill role" data-field="role">${text(roleText(view))}</span>
  <span class="who">id <code data-field="id">${text(view.id === null ? '–' : String(view.id))}</code> · <span data-field="clients">${view.clients ?? '–'}</span> clients</span>
  <span class="pill run" data-field="run">${text(runText(view))}</span>
  <span class="link" data-field="link">live</span>
</header>
<main>
  <section class="cards">
    <div class="card state"><h2>State</h2><code data-field="state">${text(view.state)}</code><p data-field="description">${text(view.description ?? '')}</p></div>
    <div class="card"><h2>Round</h2><strong data-field="round">${view.round}</strong></div>
    <div class="card"><h2>Progress</h2><div class="bar"><span data-field="progress-bar"></span></div><strong data-field="progress">${percent(view.progress)}</strong></div>
    <div class="card message"><h2>Message</h2><strong data-field="message">${text(view.message)}</strong></div>
    <div class="card"><h2>Inbox</h2><strong data-field="inbox">${view.inbox}</strong><small>messages kept</small></div>
    <div class="card"><h2>Outbox</h2><strong data-field="outbox">${view.outbox}</strong><small data-field="next">${text(nextText(view))}</small></div>
  </section>
  <figure id="diagram" class="${view.role === null ? '' : `role-${view.role}`}">
    ${MACHINE_SVG}
    <figcaption>The client machine, drawn from its definition. The current state is highlighted; states of the other role are faded.</figcaption>
  </figure>
</main>
<footer>Updated <span data-field="updated">at load</span> · asks <code>${WEB_STATE_FILE}</code> every ${POLL_INTERVAL_MS / 1000} s · plain text: <code>curl -H 'Accept: text/plain'</code> on this address</footer>
<script type="application/json" id="initial-view">${scriptJson(view)}</script>
<script>${SCRIPT}</script>
</body>
</html>
`;
}
