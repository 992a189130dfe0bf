"""``nnext compare``: paired per-case comparison of two ``nnext evaluate`` summaries.

On the cases present in both summaries, for each label / region and metric: mean of A and B, mean and median
of the difference d = B - A, two-sided Wilcoxon signed-rank p-value, Spearman rho and Pearson r of the per-case
values (:mod:`nnunet_ext.core.stats`; pairs with a NaN value are dropped, so ``n`` can differ per metric). A label
key that both summaries name differently (or whose label values differ) is refused: the numbers would be paired
across different classes.
"""
from __future__ import annotations

import argparse
import math
import sys

DEFAULT_METRICS = ("dice", "hd95", "nsd")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", required=True, metavar="SUMMARY_A.json", help="summary of method A (nnext evaluate)")
    p.add_argument("-b", required=True, metavar="SUMMARY_B.json", help="summary of method B")
    p.add_argument("-m", "--metrics", nargs="+", default=list(DEFAULT_METRICS), metavar="METRIC",
                   help=f"metrics to compare (default: {' '.join(DEFAULT_METRICS)}; e.g. dice iou hd hd95 assd nsd "
                        f"boundary_dice sensitivity)")
    p.add_argument("-l", "--labels", nargs="+", metavar="LABEL",
                   help="labels / regions (keys such as 1 or 1,2,3, or names) to compare (default: all in both)")
    p.add_argument("-o", "--output", metavar="out.json", help="also write the results as JSON")


def compare_summaries(summary_a: dict, summary_b: dict, metrics=DEFAULT_METRICS, labels=None,
                      names: tuple[str, str] = ("A", "B")) -> dict:
    """Paired statistics of two loaded summaries (see :func:`nnunet_ext.evaluation.summary_io.load_summary`);
    ``names`` (their files) name the summary in messages. A compared label key missing from a common case's
    metrics is refused naming the case and both key sets."""
    from nnunet_ext.core.stats import compare_paired
    from nnunet_ext.errors import InputError

    cases_a = {r["case"]: r["metrics"] for r in summary_a["metric_per_case"]}
    cases_b = {r["case"]: r["metrics"] for r in summary_b["metric_per_case"]}
    common = sorted(set(cases_a) & set(cases_b))
    if not common:
        raise InputError(f"the two summaries share no case (A: {len(cases_a)} cases, B: {len(cases_b)} cases)")
    keys_a = _label_keys(summary_a, cases_a)
    keys_b = _label_keys(summary_b, cases_b)
    shared = [k for k in keys_a if k in keys_b]
    _check_same_meaning(summary_a, summary_b, shared)
    keys = shared if not labels else [_resolve_label(str(x), shared, summary_a, summary_b) for x in labels]
    if not keys:
        raise InputError(f"the two summaries share no label or region (A: {', '.join(keys_a)}; B: {', '.join(keys_b)})")
    for name, cases in zip(names, (cases_a, cases_b)):
        for c in common:
            lacking = [k for k in keys if k not in cases[c]]
            if lacking:
                raise InputError(f"{name}: case {c!r} has metrics for label key(s) {', '.join(map(repr, cases[c]))}, "
                                 f"not {', '.join(map(repr, lacking))} that the other cases / summary use "
                                 "(summaries of different label sets?)")
    available = sorted(set.intersection(*(set(cases_a[c][k]) & set(cases_b[c][k]) for c in common for k in keys)))
    lower = {m.lower(): m for m in available}
    chosen = []
    for m in metrics:
        if m.lower() not in lower:
            raise InputError(f"unknown metric {m!r}; available: {', '.join(available)}")
        chosen.append(lower[m.lower()])
    results = []
    for key in keys:
        for m in chosen:
            a = [cases_a[c][key][m] for c in common]
            b = [cases_b[c][key][m] for c in common]
            results.append({"label": key, "metric": m, **compare_paired(a, b)})
    return {"n_common_cases": len(common), "only_in_a": sorted(set(cases_a) - set(cases_b)),
            "only_in_b": sorted(set(cases_b) - set(cases_a)), "cases": common, "results": results}


def _check_same_meaning(summary_a: dict, summary_b: dict, keys: list[str]) -> None:
    """A label key shared by both summaries must mean the same thing: InputError when both name it and the names
    differ, or its label values differ (label 1 "GTVp" of A against label 1 "tumour" of B)."""
    from nnunet_ext.errors import InputError

    info_a, info_b = summary_a.get("labels") or {}, summary_b.get("labels") or {}
    for key in keys:
        a, b = info_a.get(key), info_b.get(key)
        if not isinstance(a, dict) or not isinstance(b, dict):
            continue
        for field in ("name", "values"):
            if a.get(field) is not None and b.get(field) is not None and a[field] != b[field]:
                raise InputError(f"label {key} has {field} {a[field]!r} in A and {b[field]!r} in B: the summaries "
                                 "were evaluated with different dataset labels; compare summaries of one dataset")


def _label_keys(summary: dict, cases: dict) -> list[str]:
    if isinstance(summary.get("labels"), dict):
        return list(summary["labels"])
    first = next(iter(cases.values()))
    return [k for k in first if all(k in m for m in cases.values())]


def _resolve_label(text: str, keys: list[str], *summaries: dict) -> str:
    from nnunet_ext.errors import InputError
    from nnunet_ext.evaluation.metrics import label_key, parse_label_key

    try:
        key = label_key(parse_label_key(text))
    except ValueError:
        key = text
    if key in keys:
        return key
    for s in summaries:  # by name
        for k, info in (s.get("labels") or {}).items():
            if k in keys and isinstance(info, dict) and str(info.get("name", "")).lower() == text.lower():
                return k
    raise InputError(f"label or region {text!r} is not in both summaries (shared: {', '.join(keys) or 'none'})")


def _fmt(v: float, spec: str = ".4g") -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def format_table(result: dict) -> str:
    head = f"{'label':<10}{'metric':<15}{'n':>5}{'mean A':>11}{'mean B':>11}{'B - A':>11}" \
           f"{'Wilcoxon p':>12}{'Spearman':>10}{'Pearson':>10}"
    lines = [head, "-" * len(head)]
    for r in result["results"]:
        lines.append(f"{r['label'][:10]:<10}{r['metric'][:15]:<15}{r['n']:>5}{_fmt(r['mean_a']):>11}"
                     f"{_fmt(r['mean_b']):>11}{_fmt(r['mean_difference'], '+.4g'):>11}"
                     f"{_fmt(r['wilcoxon']['pvalue'], '.3g'):>12}{_fmt(r['spearman']['statistic'], '.3f'):>10}"
                     f"{_fmt(r['pearson']['statistic'], '.3f'):>10}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    import json

    from nnunet_ext.evaluation.summary_io import atomic_write_text, json_safe, load_summary

    if args.output:
        from nnunet_ext.io.integrity import check_output_file

        check_output_file(args.output, "output file (-o)")
    a, b = load_summary(args.a), load_summary(args.b)
    result = compare_summaries(a, b, args.metrics, args.labels, names=(args.a, args.b))
    result = {"a": args.a, "b": args.b, **result}
    print(f"A = {args.a}\nB = {args.b}\n{result['n_common_cases']} common case(s)"
          + (f"; only in A: {len(result['only_in_a'])}" if result["only_in_a"] else "")
          + (f"; only in B: {len(result['only_in_b'])}" if result["only_in_b"] else ""))
    print(format_table(result))
    if args.output:
        atomic_write_text(args.output, json.dumps(json_safe(result), indent=2, allow_nan=False) + "\n")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0
