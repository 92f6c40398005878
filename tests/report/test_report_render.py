"""`sgcd report` on synthetic run and compare folders: self-contained, escaped, bounded, PNGs beside the page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from report_synthetic import make_run_dir

from sgcd.cli import main as cli_main
from sgcd.report import RunDirError, build_compare_report, build_report
from sgcd.report.rundir import load_run, read_groups

# A resource the browser would fetch: src/href/action/poster/srcset attributes, CSS url() and @import.
RESOURCE_RE = re.compile(
    r"""(?:\b(?:src|href|action|poster|srcset|data)\s*=\s*["']?\s*(?:https?:)?//)|url\(\s*["']?\s*(?:https?:)?//"""
    r"""|@import""",
    re.IGNORECASE,
)
MAX_BYTES = 10_000_000


def _blob(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="sgcd-data">(.*?)</script>', html, re.S)
    assert m, "the page has no data blob"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One synthetic run (3 sample files x 2 groups x 4 siblings) and its default report, shared by the
    read-only tests below (drawing figures is the slow part)."""
    run = make_run_dir(tmp_path_factory.mktemp("built"), steps=12, eval_every=4, groups_per_file=2)
    result = build_report(run)
    return run, result, result.html_path.read_text()


def test_report_is_self_contained_and_has_every_part(built):
    run, result, html = built
    assert result.html_path == run / "report.html" and result.html_bytes < MAX_BYTES
    assert RESOURCE_RE.search(html) is None
    # every image is inline, and each headline/histogram figure also exists as a PNG beside the page
    srcs = re.findall(r'<img alt="[^"]*" src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    names = {p.name for p in result.png_paths}
    assert names == {f"{n}.png" for n in ("held_out_success", "reward", "tool_use_health", "credit_weights",
                                          "credit_spread_and_bounds", "hist_outcome", "hist_token_type")}  # fmt: skip
    assert len(srcs) == len(names)
    assert all(
        p.parent == run / "report_figures" and p.read_bytes()[:4] == b"\x89PNG" for p in result.png_paths
    )
    # every logged key has a sparkline row: the synthetic metrics carry 18 keys besides "step" (reward 2,
    # sampling 1, credit 9 = mean, std, 5 percentiles, 2 bound fractions, loss 1, policy 1, tools 2, time 1, eval 1)
    n_keys = (
        len({k for row in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) for k in row}) - 1
    )
    assert n_keys == 18 and html.count("<polyline") == n_keys
    # 3 sample files x 2 groups = 6 groups <= 8 default: all drawn; one .traj box per sibling (4 each)
    assert result.n_groups == 6 and html.count('class="traj"') == 24
    # each sibling's header: its calls, ending and verdict (3 lines); a failure's cancel is marked as an error
    assert html.count('class="epi"') == 3 * 24
    assert "calls: get_reservation_details -&gt; cancel_reservation [x]" in html
    assert "eval_after.success" in html and "airline-lite" in html  # summary and config


def test_untrusted_text_is_escaped_everywhere(built):
    _, _, html = built
    # exactly two script elements: the data blob and the page script; hostile tokens and reference strings
    # (`<script>alert(...)`, `<img onerror>`, `<b>`) never appear as markup.
    assert len(re.findall(r"<script\b", html)) == 2
    assert "<img src=x" not in html and "<b>bold" not in html and "<my>" not in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html  # the reference's failure mode, escaped
    blob = _blob(html)
    assert "</script>" in blob["tok"] and '<img src=x onerror="alert(2)">' in blob["tok"]  # intact as data


def test_blob_decodes_back_to_the_sampled_tokens(built):
    run, _, html = built
    blob = _blob(html)
    groups = sorted((g for p in load_run(run).sample_files for g in read_groups(p)), key=lambda g: g.step)
    assert [g["step"] for g in blob["groups"]] == [g.step for g in groups]
    for packed_group, group in zip(blob["groups"], groups):
        for packed, sib in zip(packed_group["sibs"], group.siblings):
            assert [blob["tok"][k] for k in packed["k"]] == sib.tokens
            assert packed["w"] == [round(1000 * w) for w in sib.weights]
            assert packed["m"] == "".join(map(str, sib.action_mask))


def test_default_size_page_stays_under_10_mb(tmp_path):
    # The trainer's defaults: G = 6, <= 1024 trajectory tokens; the report draws at most 8 groups by default.
    # 56 turns of ~18 tokens (6 thinking + 6 call + 6 observation) ~ 1000 tokens per trajectory, so
    # 8 groups x 6 siblings ~ 48k token spans.
    run = make_run_dir(tmp_path, steps=8, eval_every=4, groups_per_file=4, group_size=6, n_turns=56)
    result = build_report(run)
    assert result.n_groups == 8 and result.n_tokens > 40_000
    assert result.html_bytes < MAX_BYTES


def test_max_groups_and_out_path(tmp_path):
    run = make_run_dir(tmp_path, groups_per_file=3)
    out = tmp_path / "elsewhere" / "r.html"
    result = build_report(run, out=out, max_groups=2)
    assert result.html_path == out and (tmp_path / "elsewhere" / "r_figures").is_dir()
    assert result.n_groups == 2 and any("showing 2 of 9" in n for n in result.notes)
    steps = [g["step"] for g in _blob(out.read_text())["groups"]]
    assert steps == [4, 12]  # the first and the latest of 9 groups at steps 4, 8, 12


def test_run_without_samples_or_summary_still_renders(tmp_path):
    run = make_run_dir(tmp_path)
    for p in (run / "samples").iterdir():
        p.unlink()
    (run / "summary.json").unlink()
    result = build_report(run)
    html = result.html_path.read_text()
    assert result.n_groups == 0 and 'id="sgcd-data"' not in html
    assert "summary.json is missing" in html and "no samples/step_" in html


def test_no_teacher_step_and_live_truncated_metrics(tmp_path):
    run = make_run_dir(tmp_path, groups_per_file=1)
    path = sorted((run / "samples").iterdir())[0]
    line = json.loads(path.read_text().splitlines()[0])
    for sib in line["siblings"]:
        sib["teacher_logprobs"] = None  # the trainer writes null when the step had no teacher
        del sib["weights"]  # and a GRPO run may omit weights: they read as 1
    path.write_text(json.dumps(line) + "\n")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 13, "reward/me')  # a run still writing its last line
    result = build_report(run)
    sib = _blob(result.html_path.read_text())["groups"][0]["sibs"][0]
    assert set(sib["t"]) == {None} and set(sib["w"]) == {1000}


def test_bad_input_names_file_line_and_field(tmp_path):
    run = make_run_dir(tmp_path)
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[2] = "{not json"
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunDirError, match=r"metrics.jsonl: line 3 is not JSON"):
        build_report(run)
    run2 = make_run_dir(tmp_path / "b")
    path = sorted((run2 / "samples").iterdir())[0]
    line = json.loads(path.read_text().splitlines()[0])
    line["siblings"][1]["weights"] = line["siblings"][1]["weights"][:-1]
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(
        RunDirError, match=r"step_000004.jsonl:1: siblings\[1\]: field 'weights' must be a list"
    ):
        build_report(run2)
    assert not (run2 / "report.html").exists()  # nothing half-written


def test_cli_report_and_one_line_errors(tmp_path, capsys):
    run = make_run_dir(tmp_path)
    assert cli_main(["report", str(run), "--quiet", "--max-groups", "1"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {run / 'report.html'}" in out and "1 groups" in out
    assert cli_main(["report", str(tmp_path / "missing")]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert cli_main(["report", str(tmp_path)]) == 2  # a folder that is not a run
    assert "no metrics.jsonl" in capsys.readouterr().err


def _compare_dir(tmp_path: Path) -> Path:
    """A compare folder as `sgcd compare` wrote it before sgcd.report.study owned the tables: runs with absolute
    run_dir and figures, per-algorithm "aggregate" figures, and compare.md named by "table"."""
    root = tmp_path / "cmp"
    runs = []
    for algo, seeds in (("grpo", (0, 1)), ("sgcd", (0, 1))):
        for seed in seeds:
            run = make_run_dir(root / f"{algo}-s{seed}", seed=seed + 10 * (algo == "sgcd"))
            runs.append({"algorithm": algo, "seed": seed, "run_dir": str(run), "metrics": str(run / "metrics.jsonl"),
                         "success_after": 0.25 + 0.25 * (algo == "sgcd"), "wall_s": 12.0})  # fmt: skip
    runs.append({"algorithm": "<i>sgcd</i>", "seed": 2, "run_dir": str(root / "gone")})
    stats = {"mean": 0.5, "std": 0.1, "min": 0.4, "max": 0.6, "n": 2}
    agg = {"grpo": {"success_after": {**stats, "mean": 0.25}}, "sgcd": {"success_after": stats}}
    doc = {"algorithms": ["grpo", "sgcd"], "seeds": [0, 1], "runs": runs, "aggregate": agg,
           "table": str(root / "compare.md"), "plot": str(root / "curves.png")}  # fmt: skip
    (root / "compare.json").write_text(json.dumps(doc))
    (root / "compare.md").write_text("| algorithm | success |\n| grpo | 0.25 |\n")
    return root


def test_compare_page(tmp_path):
    root = _compare_dir(tmp_path)
    build_report(root / "sgcd-s0" / "run")  # one run already has its page: the compare page links to it
    result = build_compare_report(root)
    html = result.html_path.read_text()
    assert RESOURCE_RE.search(html) is None and result.html_bytes < MAX_BYTES
    # the old "aggregate" key is ignored: the study section's per-arm table is the only one computed
    assert "± 0.100" not in html and "<h3>Held-out success after training" in html
    assert "| grpo | 0.25 |" in html  # the file compare.json names as "table" is shown verbatim
    assert (
        "&lt;i&gt;sgcd&lt;/i&gt; seed 2: no metrics.jsonl" in html
    )  # a missing run is named, escaped, not fatal
    assert 'href="sgcd-s0/run/report.html"' in html
    # the curves are the study's (sgcd.report.study), its own panels and the training diagnostics
    assert {p.name for p in result.png_paths} == {"study_curves.png", "study_diagnostics.png"}
    assert 'alt="training diagnostics per arm" src="data:image/png;base64,' in html
    assert cli_main(["report", str(root), "--quiet"]) == 0  # compare.json is detected


def test_compare_rows_table():
    from sgcd.report.compare import table_rows

    cols, rows = table_rows(
        {"rows": [{"algorithm": "grpo", "x": 0.123456}, {"algorithm": "sgcd", "y": None}]}
    )
    assert cols == ["algorithm", "x", "y"] and rows == [
        {"algorithm": "grpo", "x": "0.1235"},
        {"algorithm": "sgcd", "y": ""},
    ]
    assert table_rows({"columns": ["a", "b"], "rows": [[1, "x"]]}) == (["a", "b"], [{"a": "1", "b": "x"}])
    # an old `sgcd compare` file's per-arm "aggregate" is not a second table any more
    assert table_rows({"aggregate": {"grpo": {"success_after": {"mean": 0.5, "n": 1}}}}) == ([], [])


def test_compare_runs_as_mapping(tmp_path):
    from sgcd.report.compare import parse_runs

    refs = parse_runs({"grpo": ["a", "/abs/b"], "sgcd": {"7": "c"}}, tmp_path)
    assert [(r.algorithm, r.seed, r.path) for r in refs] == [
        ("grpo", "0", tmp_path / "a"),
        ("grpo", "1", Path("/abs/b")),
        ("sgcd", "7", tmp_path / "c"),
    ]
    with pytest.raises(RunDirError, match=r"runs\[0\] has no 'run_dir'"):
        parse_runs([{"algorithm": "x"}], tmp_path)
