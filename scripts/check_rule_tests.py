"""The checks of scripts/check-rule-tests (which says what they are and why); run through it.

    check_rule_tests.py [--runs N] TEST_FILE...   every check on these promtool rule test files
    check_rule_tests.py --static TEST_FILE...     only those that need no promtool run
    check_rule_tests.py --self-test               plants a fault of each kind and expects it found
"""

import concurrent.futures
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

import yaml

UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
# The reverse order's evaluation interval at most: 4m, so that a record one evaluation old is
# still within the 5m lookback, as it is at production's 30 s.
REVERSED_MAX_INTERVAL = 240
# Words that are no selector even when no "(" follows them: the aggregations take "by (...)" or
# "without (...)" first.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "sum", "min", "max",
            "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
NUMBER = re.compile(r"[0-9.]+(?:[eE][+-]?[0-9]+)?(?:[A-Za-z]+[0-9]*)*")  # 14.4, 1e3, 5m, 0x1F
JOB = re.compile(r'(?:^|[{,])\s*job\s*=\s*"')


def seconds(duration):
    """Seconds in a Prometheus duration ('5m', '1h30m'); a number alone is seconds."""
    text = str(duration)
    if re.fullmatch(r"[0-9.]+", text):
        return float(text)
    parts = re.findall(r"([0-9]+)(ms|s|m|h|d|w|y)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a duration: {text!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def closing(text, i, open_, close):
    """The index just past the `close` that matches the `open_` at text[i], strings skipped."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "\"'`":
            i = skip_string(text, i)
            continue
        depth += c == open_
        depth -= c == close
        i += 1
        if depth == 0:
            return i
    raise ValueError(f"unbalanced {open_} in {text!r}")


def skip_string(text, i):
    """The index just past the string literal that starts at text[i]."""
    quote, i = text[i], i + 1
    while text[i] != quote:
        i += 2 if text[i] == "\\" and quote != "`" else 1
    return i + 1


def selectors(expr):
    """(name, matchers, window, step) of each selector and subquery of a PromQL expression.

    name is '' for a subquery; window is None for an instant selector; step is None unless the
    brackets are a subquery's ('' for one without a step)."""
    i, found = 0, []

    def brackets(j):
        """A window at text[j] (spaces first), as (window, step, end), or (None, None, j)."""
        k = j
        while k < len(expr) and expr[k].isspace():
            k += 1
        if k < len(expr) and expr[k] == "[":
            end = closing(expr, k, "[", "]")
            inside = expr[k + 1 : end - 1].replace(" ", "")
            window, colon, step = inside.partition(":")
            return window, (step if colon else None), end
        return None, None, j

    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c == "#":
            i = expr.find("\n", i) if "\n" in expr[i:] else len(expr)
        elif c in "\"'`":
            i = skip_string(expr, i)
        elif c in "0123456789." and (m := NUMBER.match(expr, i)):
            i = m.end()
        elif m := IDENT.match(expr, i):
            word, j = m.group(), m.end()
            while j < len(expr) and expr[j].isspace():
                j += 1
            if word.lower() in GROUPING and j < len(expr) and expr[j] == "(":
                i = closing(expr, j, "(", ")")
            elif (j < len(expr) and expr[j] == "(") or word.lower() in KEYWORDS | GROUPING:
                i = m.end()
            else:
                matchers = ""
                if j < len(expr) and expr[j] == "{":
                    end = closing(expr, j, "{", "}")
                    matchers, j = expr[j:end], end
                window, step, i = brackets(j)
                found.append((word, matchers, window, step))
        elif c == "{":
            end = closing(expr, i, "{", "}")
            matchers = expr[i:end]
            window, step, i = brackets(end)
            found.append(("", matchers, window, step))
        elif c == ")":
            window, step, i = brackets(i + 1)
            if window is not None:
                found.append(("", "", window, step))
        else:
            i += 1
    return found


def load_rules(test_path, test):
    """The rule files a test file names (globs resolved): {path: [groups]}."""
    base = os.path.dirname(os.path.abspath(test_path))
    files = {}
    for pattern in test.get("rule_files") or []:
        paths = sorted(glob.glob(os.path.join(base, pattern)))
        if not paths:
            raise SystemExit(f"{test_path}: no rule file is {pattern}")
        for path in paths:
            with open(path) as f:
                files[path] = (yaml.safe_load(f) or {}).get("groups") or []
    return files


def window_faults(test_path, test, rule_files):
    """Each window that an asserted expression reads, rules followed, and that holds at most
    one sample once windows exclude their left edge (Prometheus 3): spacing >= window."""
    recording, alerts = {}, {}
    for groups in rule_files.values():
        for group in groups:
            for rule in group.get("rules") or []:
                if "record" in rule:
                    recording.setdefault(rule["record"], []).append(rule["expr"])
                else:
                    alerts[rule["alert"]] = rule["expr"]
    evaluation = seconds(test.get("evaluation_interval", "1m"))
    faults = []
    for group in test.get("tests") or []:
        # Unset, the interval is 1m in promtool 2.x and the evaluation interval in 3.x.
        interval = seconds(group["interval"]) if "interval" in group else max(60, evaluation)
        asserted = [(f"the expression {t['expr']!r}", t["expr"])
                    for t in group.get("promql_expr_test") or []]
        for name in dict.fromkeys(t["alertname"] for t in group.get("alert_rule_test") or []):
            if name in alerts:
                asserted.append((f"the alert {name}", alerts[name]))
        for what, expr in asserted:
            stack, seen = [(expr, ())], set()
            while stack:
                text, via = stack.pop()
                for name, _, window, step in selectors(text):
                    if window is not None:
                        if step is not None:
                            spacing = seconds(step) if step else evaluation
                            over, window = "a subquery's steps", f"{window}:{step}"
                        elif name in recording:
                            spacing, over = evaluation, f"{name}, recorded"
                        else:
                            spacing, over = interval, name or "a selector"
                        if spacing >= seconds(window.partition(":")[0]):
                            through = f" (through {' > '.join(via)})" if via else ""
                            faults.append(
                                f"{test_path}: {group.get('name', '?')!r}: [{window}] over {over} "
                                f"every {fmt(spacing)}, read by {what}{through}: from Prometheus "
                                "3 on, a window excludes its left edge and holds at most one "
                                "sample; make the samples closer than the window")
                    if name in recording and name not in seen:
                        seen.add(name)
                        stack += [(e, via + (name,)) for e in recording[name]]
    return list(dict.fromkeys(faults))


def fmt(spacing):
    """Seconds as a Prometheus duration."""
    for unit in ("d", "h", "m", "s"):
        if spacing >= UNITS[unit] and spacing % UNITS[unit] == 0:
            return f"{int(spacing // UNITS[unit])}{unit}"
    return f"{spacing}s"


def order_faults(test_path, test, rule_files):
    """Groups promtool would evaluate in a random order: not all listed in group_eval_order."""
    groups = [g["name"] for gs in rule_files.values() for g in gs]
    missing = [g for g in groups if g not in (test.get("group_eval_order") or [])]
    if len(groups) > 1 and missing:
        return [f"{test_path}: group_eval_order does not list {', '.join(missing)}: promtool "
                "evaluates the groups in a random order at each step, and a rule reading "
                "another group's records flakes"]
    return []


def scope_faults(rule_files):
    """Selectors of the rules that name no job: on a shared Prometheus they read every job."""
    faults = []
    for path, groups in rule_files.items():
        for group in groups:
            for rule in group.get("rules") or []:
                for name, matchers, _, _ in selectors(rule["expr"]):
                    if (name or matchers) and not JOB.search(matchers):
                        rule_name = rule.get("record") or rule.get("alert")
                        faults.append(f"{os.path.relpath(path)}: {rule_name}: {name}{matchers} "
                                      "names no job")
    return list(dict.fromkeys(faults))


# A rule that counts a target only with N scrapes in a window: count_over_time(up{...}[W]) >= N.
SCRAPES = re.compile(r"count_over_time\(\s*up(\{[^}]*\})\s*\[(\w+)\]\s*\)\s*>=\s*([0-9]+)")


def scrape_intervals(root):
    """(where, seconds) of each scrape interval of the app's job: prometheus/prometheus.yml's
    (the job's own, else the global one) and the Kubernetes ServiceMonitor's."""
    found = []
    path = os.path.join(root, "prometheus/prometheus.yml")
    if os.path.exists(path):
        with open(path) as f:
            config = yaml.safe_load(f)
        default = (config.get("global") or {}).get("scrape_interval", "1m")
        for job in config.get("scrape_configs") or []:
            if job.get("job_name") == "flask_app":
                found.append((f"{os.path.relpath(path)}, job flask_app",
                              seconds(job.get("scrape_interval", default))))
    path = os.path.join(root, "deploy/kubernetes/service-monitor.yaml")
    if os.path.exists(path):
        with open(path) as f:
            monitor = yaml.safe_load(f)
        for endpoint in (monitor.get("spec") or {}).get("endpoints") or []:
            found.append((f"{os.path.relpath(path)}", seconds(endpoint.get("interval", "30s"))))
    return found


def scrape_faults(rule_files, intervals):
    """Rules that count a target only with N scrapes in a window W, where a scrape interval of
    the app's job leaves fewer than N + 1 scrapes in W: a live target would not always count."""
    faults = []
    for path, groups in rule_files.items():
        for group in groups:
            for rule in group.get("rules") or []:
                for _, window, needed in SCRAPES.findall(rule["expr"]):
                    for where, interval in intervals:
                        if interval * (int(needed) + 1) > seconds(window):
                            name = rule.get("record") or rule.get("alert")
                            faults.append(
                                f"{os.path.relpath(path)}: {name} counts a target with {needed} "
                                f"scrapes in [{window}], but {where} scrapes every "
                                f"{fmt(interval)}: the window must hold {int(needed) + 1} "
                                "intervals, so that a live target always counts")
    return list(dict.fromkeys(faults))


def static_faults(paths):
    """The faults of the checks that run no test: windows, group order, job scope."""
    faults = []
    for path in paths:
        with open(path) as f:
            test = yaml.safe_load(f)
        rule_files = load_rules(path, test)
        faults += window_faults(path, test, rule_files) + order_faults(path, test, rule_files)
        faults += scope_faults(rule_files)
        root = os.path.join(os.path.dirname(os.path.abspath(path)), "../..")
        faults += scrape_faults(rule_files, scrape_intervals(root))
    return list(dict.fromkeys(faults))


def promtool(paths):
    promtool = os.environ.get("PROMTOOL") or "promtool"
    run = subprocess.run([promtool, "test", "rules", *paths], capture_output=True, text=True)
    return run.returncode == 0, run.stdout + run.stderr


def reversed_faults(paths):
    """Runs each file with its groups in the reverse order, alerts before the records they read,
    as production may run them: an assertion that holds either way does not depend on it."""
    faults = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in paths:
            with open(path) as f:
                test = yaml.safe_load(f)
            rule_files = load_rules(path, test)
            if len({g["name"] for gs in rule_files.values() for g in gs}) < 2:
                continue
            test["rule_files"] = list(rule_files)
            test["group_eval_order"] = [g["name"] for gs in rule_files.values() for g in gs][::-1]
            evaluation = seconds(test.get("evaluation_interval", "1m"))
            if evaluation > REVERSED_MAX_INTERVAL:
                test["evaluation_interval"] = fmt(REVERSED_MAX_INTERVAL)
            for group in test.get("tests") or []:
                group.setdefault("interval", fmt(max(60, evaluation)))
            copy = os.path.join(tmp, os.path.basename(path))
            with open(copy, "w") as f:
                yaml.safe_dump(test, f, sort_keys=False)
            ok, out = promtool([copy])
            if not ok:
                faults.append(f"{path}: fails with the groups in the reverse order "
                              f"({', '.join(test['group_eval_order'])}), evaluated every "
                              f"{test.get('evaluation_interval', '1m')}: an assertion depends "
                              f"on the order, which production does not promise:\n{out}")
    return faults


def repeated_faults(paths, runs):
    """Runs the files `runs` times, as many at once as there are cores: each run must pass."""
    failed, first = 0, ""
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for ok, out in pool.map(lambda _: promtool(paths), range(runs)):
            if not ok:
                failed, first = failed + 1, first or out
    if failed:
        return [f"promtool test rules failed {failed} of {runs} runs; the first:\n{first}"]
    return []


def self_test():
    """Plants a fault of each kind in a scratch rule file and test file; each must be found, and
    the real files must pass the static checks."""
    rules = """groups:
  - name: records
    rules:
      - record: job:requests:rate5m
        expr: sum by (job) (rate(requests_total{job="app"}[5m]))
      - record: job:requests:max5m
        expr: max_over_time(job:requests:rate5m{job="app"}[5m:5m])
      - record: job:requests:sum
        expr: sum by (job) (requests_total{job="app"})
  - name: alerts
    rules:
      - alert: Counted
        expr: job:requests:sum{job="app"} > 100
        annotations:
          summary: "{{ $value }} requests"
      - alert: Everywhere
        expr: up == 0 and on (instance) rate(requests_total{job="app"}[1m]) > 0
"""
    head = """rule_files: [rules.yml]
evaluation_interval: 1m
group_eval_order: [records, alerts]
tests:
"""
    # A [5m] rate over samples 5m apart, read through two recording rules, one a subquery whose
    # step is its range.
    sparse = """  - name: samples as far apart as the window
    interval: 5m
    input_series:
      - series: 'requests_total{job="app"}'
        values: '0+300x10'
    promql_expr_test:
      - expr: job:requests:max5m
        eval_time: 50m
        exp_samples:
          - labels: 'job:requests:max5m{job="app"}'
            value: 1
"""
    # An alert asserted where its value is this very evaluation's record, 300, where the one
    # before was 240: it passes in the order given, and fails in the reverse.
    changing = """  - name: a value that changes at every step
    interval: 1m
    input_series:
      - series: 'requests_total{job="app"}'
        values: '0+60x10'
    alert_rule_test:
      - eval_time: 5m
        alertname: Counted
        exp_alerts:
          - exp_labels:
              job: app
            exp_annotations:
              summary: "300 requests"
"""
    expected = [
        "'samples as far apart as the window': [5m] over requests_total every 5m, read by the "
        "expression 'job:requests:max5m' (through job:requests:max5m > job:requests:rate5m)",
        "[5m:5m] over a subquery's steps every 5m",
        "Everywhere: up names no job",
    ]
    unexpected = ["'a value that changes", "[1m]", 'requests_total{job="app"} names no job']
    faults = []
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "rules.yml"), "w") as f:
            f.write(rules)
        path = os.path.join(tmp, "planted.test.yml")

        def check(text, how):
            with open(path, "w") as f:
                f.write(text)
            return "\n".join(how([path]))

        found = check(head + sparse + changing, static_faults)
        faults += [f"self-test: not found: {e}" for e in expected if e not in found]
        faults += [f"self-test: wrongly found: {u}" for u in unexpected if u in found]
        unordered = head.replace("[records, alerts]", "[alerts]") + changing
        if "does not list records" not in check(unordered, static_faults):
            faults.append("self-test: not found: a group left out of group_eval_order")
        if check(head + changing, lambda paths: [promtool(paths)[1]] * (not promtool(paths)[0])):
            faults.append("self-test: the planted order-dependent test fails as given")
        if "depends on the order" not in check(head + changing, reversed_faults):
            faults.append("self-test: not found: an assertion that depends on the groups' order")
    # Three scrapes a minute asked of a job scraped every 30 s: a live target has two.
    counted = {"rules.yml": [{"name": "records", "rules": [
        {"record": "job:up:count", "expr": 'count by (job) (count_over_time(up{job="app"}[1m]) >= 3)'}]}]}
    if "scrapes every 30s" not in "\n".join(scrape_faults(counted, [("planted", 30)])):
        faults.append("self-test: not found: a scrape interval too long for a count of scrapes")
    if scrape_faults(counted, [("planted", 15)]):
        faults.append("self-test: wrongly found: a 15 s scrape interval for three scrapes a minute")
    real = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../prometheus/tests")
    faults += [f"self-test: the real tests: {f}"
               for f in static_faults(sorted(glob.glob(os.path.join(real, "*.test.yml"))))]
    return faults


def main(argv):
    runs = 6
    if argv[:1] == ["--self-test"]:
        faults = self_test()
        label = "self-test: every planted fault found, the real files pass"
    elif argv[:1] == ["--static"]:
        faults = static_faults(argv[1:])
        label = "static checks pass"
    else:
        if argv[:1] == ["--runs"]:
            runs, argv = int(argv[1]), argv[2:]
        start = time.monotonic()
        faults = static_faults(argv)
        faults = faults or reversed_faults(argv)
        faults = faults or repeated_faults(argv, runs)
        label = (f"{len(argv)} files: windows, group order, scrape intervals and job scope checked, the reverse "
                 f"order passes, {runs} runs all pass ({time.monotonic() - start:.0f} s)")
    for fault in faults:
        print(fault, file=sys.stderr)
    print(f"{len(faults)} problems" if faults else label, file=sys.stderr)
    return 1 if faults else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
