"""The report page: one Jinja2 template with inline CSS and a small inline script (no external resource).

Jinja2 comes with torch, so this adds no dependency. Autoescape is on: every string from the run (instructions,
references, config values) is HTML-escaped; token strings never pass through the template at all (the script
sets them with textContent from the JSON blob, see heatmap.py).

URL fragment `#g=K&s=I,J` shows only group K (and only siblings I, J): a shareable link to one group, and how the
docs' screenshots are taken.
"""

from __future__ import annotations

CSS = """
*{box-sizing:border-box}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d232a;background:#fafbfc}
header{background:#1f2d3d;color:#fff;padding:12px 20px}
header h1{margin:0;font-size:20px} header .sub{opacity:.8;font-size:13px}
nav{padding:6px 20px;background:#e9eef3;font-size:13px} nav a{margin-right:14px;color:#1f4e79}
section{padding:8px 20px 16px} h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;font-size:17px}
.figs{display:flex;flex-wrap:wrap;gap:12px} .figs figure{margin:0;background:#fff;border:1px solid #d0d7de;padding:4px}
.figs figcaption{font-size:12px;color:#555} .figs img{max-width:100%;display:block}
div.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:0 14px;font-size:13px}
div.kv div{display:flex;justify-content:space-between;gap:8px;border-bottom:1px solid #e1e4e8;padding:2px 4px;background:#fff}
div.kv span{color:#444;word-break:break-all} div.kv b{font-weight:500;font-variant-numeric:tabular-nums;word-break:break-all}
table.ref,table.cmp{border-collapse:collapse;font-size:13px;background:#fff}
table.ref td,table.ref th,table.cmp td,table.cmp th{border:1px solid #d0d7de;padding:3px 7px;vertical-align:top}
table.cmp th,table.ref th{background:#eef2f6} .num{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#fff;border:1px solid #d0d7de;padding:8px;overflow:auto;font-size:12px;max-height:480px}
.note{color:#8a5300;background:#fff6e5;border:1px solid #f0d9a8;padding:4px 8px;margin:4px 0;font-size:13px}
.group{border:1px solid #c7d0d9;background:#fff;margin:14px 0;padding:8px 10px}
.group h3{margin:2px 0 6px;font-size:15px} .instr{font-size:13px;color:#333;margin-bottom:6px}
.grow{display:flex;gap:10px;align-items:flex-start}
.refpanel{flex:0 0 370px;font-size:12px;max-height:720px;overflow:auto;border-right:1px solid #e1e4e8;padding-right:8px}
.refpanel table.ref{font-size:11px;width:100%} .refpanel td{word-break:break-word} .refpanel ul{padding-left:16px;margin:2px 0}
.sibs{display:grid;grid-auto-flow:column;grid-auto-columns:minmax(330px,1fr);gap:8px;overflow-x:auto;flex:1}
.sib{border:1px solid #d0d7de;min-width:0} .sibhead{padding:4px 6px;font-size:12px;background:#f3f5f7;border-bottom:1px solid #d0d7de}
.sib.ok .sibhead{border-top:4px solid #2da44e} .sib.bad .sibhead{border-top:4px solid #cf222e}
.epi{font-size:11px;color:#57606a;word-break:break-word}
.badge{display:inline-block;padding:0 6px;border-radius:8px;font-weight:600;color:#fff;font-size:11px}
.badge.ok{background:#2da44e} .badge.bad{background:#cf222e}
.traj{font:12px/1.55 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-word;
 padding:6px;max-height:720px;overflow:auto}
.seg{display:inline} .seg.y0{display:block;margin:4px 0;padding:3px 5px;background:#eceff3;border-left:3px solid #8c959f;color:#6e7781}
.seg.y2{outline:1px dashed #7a5af8;outline-offset:1px;border-radius:2px} .seg.y3{font-weight:600}
.tk.mk{color:#8c959f} .tk:hover{outline:1px solid #000}
.turn{display:block;font:10px system-ui,sans-serif;color:#57606a;border-top:1px dotted #afb8c1;margin-top:4px}
.pol-helpful{color:#116329;font-weight:600} .pol-harmful{color:#a40e26;font-weight:600} .pol-neutral{color:#57606a}
#tip{position:fixed;display:none;pointer-events:none;background:#1f2328;color:#fff;font:12px/1.4 ui-monospace,monospace;
 padding:5px 8px;border-radius:4px;z-index:10;white-space:pre}
.legend{display:flex;align-items:center;gap:14px;flex-wrap:wrap;font-size:12px;margin:6px 0}
.bar{width:220px;height:12px;background:linear-gradient(90deg,rgba(31,119,180,.85),#fff,rgba(214,39,40,.85));border:1px solid #aaa}
.sample{font:12px ui-monospace,monospace;padding:1px 4px}
body.focus header,body.focus nav,body.focus section.other{display:none}
body.focus .group.hide,body.focus .sib.hide{display:none}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var el = document.getElementById("sgcd-data");
  if (!el) { return; }
  var data = JSON.parse(el.textContent);
  var eps = data.eps, tok = data.tok, TYPES = ["observation", "reasoning", "tool call", "answer"];
  var scale = eps;  // |w - 1| at which the colour saturates: eps from the config, or "auto" (page p99)
  function autoScale() {
    var d = [];
    data.groups.forEach(function (g) { g.sibs.forEach(function (s) {
      for (var i = 0; i < s.w.length; i++) { if (s.m.charCodeAt(i) === 49 && s.w[i] !== null) { d.push(Math.abs(s.w[i] / 1000 - 1)); } }
    }); });
    d.sort(function (a, b) { return a - b; });
    var p = d.length ? d[Math.floor(0.99 * (d.length - 1))] : 0;
    return p > 0 ? p : eps;
  }
  function colour(w) {
    var x = (w - 1) / scale; x = Math.max(-1, Math.min(1, x));
    var a = (0.85 * Math.abs(x)).toFixed(3);
    return x >= 0 ? "rgba(214,39,40," + a + ")" : "rgba(31,119,180," + a + ")";
  }
  function fmt(v, s) { return v === null || v === undefined ? "n/a" : (v / s).toFixed(s === 1000 ? 3 : 2); }
  function draw(box, sib) {
    var frag = document.createDocumentFragment(), seg = null, segType = -1, n = sib.k.length;
    for (var i = 0; i < n; i++) {
      var y = sib.y.charCodeAt(i) - 48, m = sib.m.charCodeAt(i) - 48;
      if (y !== segType) {
        seg = document.createElement("span"); seg.className = "seg y" + y; frag.appendChild(seg); segType = y;
      }
      var s = document.createElement("span");
      s.className = m ? "tk" : "tk mk"; s.textContent = tok[sib.k[i]]; s.dataset.i = i;
      seg.appendChild(s);
    }
    if (sib.n > n) {
      var more = document.createElement("span"); more.className = "turn";
      more.textContent = "... " + (sib.n - n) + " more tokens not shown (--max-tokens)"; frag.appendChild(more);
    }
    box.appendChild(frag);
  }
  function paint() {
    var boxes = document.querySelectorAll(".traj");
    for (var b = 0; b < boxes.length; b++) {
      var sib = data.groups[+boxes[b].dataset.g].sibs[+boxes[b].dataset.s], spans = boxes[b].querySelectorAll(".tk");
      for (var j = 0; j < spans.length; j++) {
        var i = +spans[j].dataset.i;
        if (sib.m.charCodeAt(i) === 49 && sib.w[i] !== null) { spans[j].style.background = colour(sib.w[i] / 1000); }
      }
    }
    document.getElementById("lo-label").textContent = "w = " + (1 - scale).toPrecision(3);
    document.getElementById("hi-label").textContent = "w = " + (1 + scale).toPrecision(3);
  }
  function setScale(mode) {
    scale = mode === "auto" ? autoScale() : eps; document.getElementById("scale").value = mode; paint();
  }
  var tip = document.getElementById("tip");
  function onOver(ev) {
    var t = ev.target;
    if (!t.classList || !t.classList.contains("tk")) { return; }
    var box = t.closest(".traj"), sib = data.groups[+box.dataset.g].sibs[+box.dataset.s], i = +t.dataset.i;
    var T = sib.t[i], U = sib.u[i], d = (T === null || U === null) ? null : T - U;
    tip.textContent = "token " + i + "  " + JSON.stringify(tok[sib.k[i]]) + "\n" +
      "type " + (TYPES[sib.y.charCodeAt(i) - 48] || "?") + (sib.m.charCodeAt(i) === 49 ? ", trained" : ", masked") +
      "\nweight w   " + fmt(sib.w[i], 1000) + "\nteacher lp " + fmt(T, 100) + "\nstudent lp " + fmt(U, 100) +
      "\ndelta      " + fmt(d, 100);
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX + 12, window.innerWidth - 260) + "px";
    tip.style.top = (ev.clientY + 14) + "px";
  }
  var boxes = document.querySelectorAll(".traj");
  for (var b = 0; b < boxes.length; b++) {
    var bx = boxes[b];
    draw(bx, data.groups[+bx.dataset.g].sibs[+bx.dataset.s]);
    bx.addEventListener("mouseover", onOver);
    bx.addEventListener("mouseleave", function () { tip.style.display = "none"; });
  }
  var h = new URLSearchParams(location.hash.slice(1));
  document.getElementById("scale").addEventListener("change", function (ev) { setScale(ev.target.value); });
  setScale(h.get("scale") === "auto" ? "auto" : "eps");
  if (h.has("g")) {
    document.body.classList.add("focus");
    var keep = h.has("s") ? h.get("s").split(",") : null, gs = document.querySelectorAll(".group");
    for (var g = 0; g < gs.length; g++) {
      if (gs[g].dataset.g !== h.get("g")) { gs[g].classList.add("hide"); continue; }
      var sibs = gs[g].querySelectorAll(".sib");
      for (var j = 0; j < sibs.length; j++) {
        if (keep && keep.indexOf(sibs[j].dataset.s) < 0) { sibs[j].classList.add("hide"); }
      }
    }
  }
  document.body.dataset.rendered = String(document.querySelectorAll(".traj .tk").length);
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>{{ title }}</title>
<style>{{ css|safe }}</style>
</head><body>
<header><h1>{{ title }}</h1><div class="sub">{{ subtitle }}</div></header>
<nav>{% for id, label in nav %}<a href="#{{ id }}">{{ label }}</a>{% endfor %}</nav>
{% for note in notes %}<section class="other"><div class="note">{{ note }}</div></section>{% endfor %}
{{ body|safe }}
<div id="tip"></div>
{% if blob %}<script type="application/json" id="sgcd-data">{{ blob|safe }}</script>{% endif %}
<script>{{ script|safe }}</script>
</body></html>
"""

RUN_BODY = """
<section id="summary" class="other"><h2>Summary</h2>
{% if summary %}<div class="kv">{% for k, v in summary %}<div><span>{{ k }}</span><b>{{ v }}</b></div>
{% endfor %}</div>{% else %}<p>No summary.json yet.</p>{% endif %}</section>
<section id="curves" class="other"><h2>Learning curves</h2>
{% if headline %}<div class="figs">{% for f in headline %}<figure><img alt="{{ f.title }}" src="{{ f.src }}">
<figcaption>{{ f.title }} ({{ f.file }})</figcaption></figure>{% endfor %}</div>{% else %}<p>No metrics logged yet.</p>{% endif %}
{% if sparks %}<details><summary>All {{ sparks|length }} logged keys</summary><table class="cmp spark">
<tr><th>key</th><th>last</th><th>min</th><th>max</th><th>points</th><th>over steps</th></tr>
{% for s in sparks %}<tr><td>{{ s.key }}</td><td class="num">{{ '%.4g'|format(s.last) }}</td>
<td class="num">{{ '%.4g'|format(s.lo) }}</td><td class="num">{{ '%.4g'|format(s.hi) }}</td><td class="num">{{ s.n }}</td>
<td><svg width="{{ spark_w }}" height="{{ spark_h }}"><polyline fill="none" stroke="#1f77b4" stroke-width="1.2"
points="{{ s.points }}"/></svg></td></tr>{% endfor %}</table></details>{% endif %}</section>
<section id="weights" class="other"><h2>Credit weights of the sampled groups</h2>
{% if hists %}<div class="figs">{% for f in hists %}<figure><img alt="{{ f.title }}" src="{{ f.src }}">
<figcaption>{{ f.title }} ({{ f.file }})</figcaption></figure>{% endfor %}</div>
<table class="cmp"><tr><th>split</th><th>tokens</th><th>mean w</th><th>at low bound</th><th>at high bound</th></tr>
{% for r in bound_rows %}<tr><td>{{ r[0] }}</td><td class="num">{{ r[1] }}</td><td class="num">{{ r[2] }}</td>
<td class="num">{{ r[3] }}</td><td class="num">{{ r[4] }}</td></tr>{% endfor %}</table>
{% else %}<p>No sampled groups with weights.</p>{% endif %}</section>
<section id="groups"><h2 class="other">Sampled mixed groups: who got the credit</h2>
<div class="legend"><span id="lo-label">w = {{ lo }}</span><span class="bar"></span><span id="hi-label">w = {{ hi }}</span>
<span>blue: advantage damped (w &lt; 1); red: amplified (w &gt; 1)</span>
<label>colour saturates at <select id="scale"><option value="eps">1 &plusmn; eps (config)</option>
<option value="auto">1 &plusmn; p99 |w &minus; 1| of this page</option></select></label>
<span class="sample seg y2">tool call</span><span class="sample seg y0" style="display:inline">observation</span>
<span class="sample seg y3">answer</span><span class="sample tk mk">masked (not trained)</span></div>
{% if dropped %}<div class="note">{{ dropped }}</div>{% endif %}
{% for g in groups %}<div class="group" id="g{{ g.index }}" data-g="{{ g.index }}">
<h3>step {{ g.step }} &middot; task {{ g.task_id }} &middot; {{ g.n_ok }} of {{ g.siblings|length }} succeeded
<a href="#g={{ g.index }}" title="a link that shows this group alone">[link]</a></h3>
<div class="instr">{{ g.instruction }}</div>
<div class="grow"><div class="refpanel"><b>Credit reference</b>{% if g.reference %}
<p>{{ g.reference.task_summary }}</p>{% if g.reference.steps %}<table class="ref"><tr><th>id</th><th>step</th><th>polarity</th><th>evidence s/f</th><th>conf</th></tr>
{% for s in g.reference.steps %}<tr><td>{{ s.step_id }}</td><td><b>{{ s.tool or "(no tool)" }}</b> {{ s.arg_pattern }}
{% if s.why %}<br><i>{{ s.why }}</i>{% endif %}</td><td class="pol-{{ s.polarity }}">{{ s.polarity }}</td>
<td>{{ (s.evidence or {}).succ }} / {{ (s.evidence or {}).fail }}</td><td class="num">{{ s.confidence }}</td></tr>{% endfor %}</table>{% else %}<p><i>no steps</i></p>{% endif %}
{% if g.reference.first_divergence %}<p><b>First divergence:</b> {{ g.reference.first_divergence.step_id }}
{{ g.reference.first_divergence.description }}</p>{% endif %}
{% if g.reference.failure_modes %}<b>Failure modes</b><ul>{% for x in g.reference.failure_modes %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
{% if g.reference.end_state_requirements %}<b>End state</b><ul>{% for x in g.reference.end_state_requirements %}<li>{{ x }}</li>{% endfor %}</ul>{% endif %}
{% else %}<p>No credit reference for this group (GRPO, teacher = none, or the summarizer fell back).</p>{% endif %}
{% if g.reference_text %}<details><summary>as the teacher read it</summary><pre>{{ g.reference_text }}</pre></details>{% endif %}
</div><div class="sibs">{% for s in g.siblings %}<div class="sib {{ 'ok' if s.success else 'bad' }}" data-s="{{ loop.index0 }}">
<div class="sibhead">#{{ loop.index0 }} <span class="badge {{ 'ok' if s.success else 'bad' }}">{{ 'success' if s.success else 'failure' }}</span>
reward {{ '%.3g'|format(s.reward) }} &middot; A = {{ '%+.3f'|format(s.advantage) }} &middot; {{ s.tokens|length }} tokens
{% for line in s.episode_lines %}<div class="epi">{{ line }}</div>{% endfor %}</div>
<div class="traj" data-g="{{ g.index }}" data-s="{{ loop.index0 }}"></div></div>{% endfor %}
</div></div></div>{% endfor %}
{% if not groups %}<p>No sampled groups in this run folder.</p>{% endif %}</section>
<section id="config" class="other"><h2>Config</h2><pre>{{ config }}</pre></section>
"""

COMPARE_BODY = """
{% if study %}<section id="study" class="other"><h2>Study</h2>
<ul>{% for line in study.status %}<li>{{ line }}</li>{% endfor %}</ul>
{% if study.command %}<p>Reproduce with: <code>{{ study.command }}</code></p>{% endif %}
<h3>Verdicts</h3><ul>{% for line in study.verdicts %}<li>{{ line }}</li>{% endfor %}</ul><p>Rule: {{ study.rule }}</p>
{% for t in study.tables %}<h3>{{ t.title }}</h3><table class="cmp"><tr>{% for c in t.header %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in t.rows %}<tr>{% for v in r %}<td class="num">{{ v }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endfor %}{% if study.curves %}<figure><img alt="study curves" src="{{ study.curves.src }}"><figcaption>held-out success, training success and write calls per episode, mean over seeds, band min-max ({{ study.curves.file }})</figcaption></figure>{% endif %}
</section>{% endif %}
{% if rows or table_md %}<section id="table" class="other"><h2>Table (from compare.json)</h2>
{% if rows %}<table class="cmp"><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr>
{% for r in rows %}<tr>{% for c in columns %}<td class="num">{{ r.get(c, "") }}</td>{% endfor %}</tr>{% endfor %}</table>
{% endif %}{% if table_md %}<details{% if not rows %} open{% endif %}><summary>as Markdown</summary><pre>{{ table_md }}</pre></details>
{% endif %}</section>{% endif %}
<section id="curves" class="other"><h2>Training diagnostics per arm</h2><div class="figs">
{% for f in figures %}<figure><img alt="{{ f.title }}" src="{{ f.src }}"><figcaption>{{ f.title }}{% if f.file %} ({{ f.file }}){% endif %}</figcaption></figure>
{% endfor %}</div>{% if not figures %}<p>No curves.</p>{% endif %}</section>
<section id="runs" class="other"><h2>Runs</h2><table class="cmp"><tr><th>algorithm</th><th>seed</th>
{% for c in run_cols %}<th>{{ c }}</th>{% endfor %}<th>run folder</th><th>report</th></tr>
{% for r in runs %}<tr><td>{{ r.algorithm }}</td><td>{{ r.seed }}</td>{% for v in r.cells %}<td class="num">{{ v }}</td>{% endfor %}
<td>{{ r.path }}</td><td>{% if r.report %}<a href="{{ r.report }}">report.html</a>{% else %}(sgcd report {{ r.path }}){% endif %}</td></tr>{% endfor %}
</table></section>
"""
