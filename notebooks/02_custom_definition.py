# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 02 · A custom success definition, checked and compared with the built-ins
#
# A success definition is a declarative YAML file; your own live in a *workspace folder*
# (`--definitions-dir`, `$LEVELCARE_DEFINITIONS` or `./definitions`), never in the code. This
# notebook
#
# 1. writes one — *completed treatment and abstinent at 90 days, among the people reached* —
#    into a workspace folder;
# 2. checks it as `levelcare definitions check FILE` does (and shows what a mistake looks like);
# 3. computes its rates beside the built-in definitions it is made of, overall and by level of
#    care (disclosure applied), and the IOP vs residential comparison for each, crude and adjusted.
#
# **Parameters** (environment variables): `LEVELCARE_NOTEBOOK_WORKDIR` (default: a new temp
# folder), `LEVELCARE_NOTEBOOK_RECORDS` (3000), `LEVELCARE_NOTEBOOK_SEED` (20261123),
# `LEVELCARE_NOTEBOOK_WAREHOUSE` (an existing warehouse instead of synthetic data).

# %% [markdown]
# *Workaround — remove once `pipelines.marts.build` is fixed:* `marts.build` runs
# `set enable_progress_bar = false`, which DuckDB refuses inside a Jupyter kernel when
# `ipywidgets` is not installed (duckdb/duckdb#7590; ipywidgets is no levelcare dependency), so
# every `analyze` / `load_registry` call would fail here. DuckDB decides "am I in Jupyter?" once,
# when it is imported, so we import it first with IPython hidden from it. Run as a script, this
# changes nothing.

# %%
from pipelines.notebook import Session, import_duckdb_outside_jupyter

import_duckdb_outside_jupyter()

# %%
import json
import os
import textwrap

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import display

from pipelines import disclosure
from pipelines.analysis.command import analyze
from pipelines.analysis.comparisons import compare
from pipelines.definitions import registry
from pipelines.definitions.evaluate import evaluate
from pipelines.errors import UserError
from pipelines.settings import Settings
from pipelines.warehouse import connect

pl.Config.set_tbl_rows(60)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_fmt_str_lengths(90)

SESSION = Session.from_environment("02_custom_definition")
WORKDIR, RECORDS, SEED, OUT, show = SESSION.workdir, SESSION.records, SESSION.seed, SESSION.out, SESSION.show
print(f"workdir: {WORKDIR}")

# %% [markdown]
# ## The warehouse (synthetic unless `LEVELCARE_NOTEBOOK_WAREHOUSE` is set)

# %%
warehouse, ledger = SESSION.native_warehouse()  # truth.json is the answer key, not an input
if ledger:
    display(SESSION.ledger_frame(ledger))
print(f"warehouse: {warehouse}")

# %% [markdown]
# ## Write the definition into a workspace folder
#
# The conditions use the expression language of `pipelines.definitions.expression` over the
# columns of `mart_episodes`. `missing: exclude` drops a reached person whose answer is
# unknown from the denominator (complete case), like the built-in `abstinent_90d_cc`.

# %%
WORKSPACE = OUT / "definitions"
WORKSPACE.mkdir(parents=True, exist_ok=True)
CUSTOM_ID = "completed_abstinent_90d_reached"
custom_file = WORKSPACE / f"{CUSTOM_ID}.yaml"
custom_file.write_text(textwrap.dedent("""\
    id: completed_abstinent_90d_reached
    version: 1
    label: "Completed and abstinent at 90 days (among the reached)"
    description: >-
      Among native discharges reached at the 90-day follow-up: treatment completed (discharge
      reason 'completed') and no use of any substance in the 30 days before that follow-up.
      Unreached, refused and deceased people are not in the denominator (complete case), so
      read it beside abstinent_90d_cc and abstinent_90d_itt.
    population: "source = 'native' and fu90_reached"
    success: "is_completed and fu90_abstinent"
    missing: exclude
    window_days: 90
    references:
      - "SAMHSA. TEDS-D codebook: REASON = 1, treatment completed."
      - "Hallgren KA, Witkiewitz K. Missing data in alcohol clinical trials: a comparison of methods. Alcohol Clin Exp Res 2013;37(12):2152-2160."
    requires: [discharge_reason, fu90_abstinent]
    """), encoding="utf-8")
print(custom_file.read_text())

# %% [markdown]
# ## Check it — what `levelcare definitions check FILE` does
#
# `load_file` parses and checks the file against the mart's columns; `merge` with the built-ins
# applies the version rule (a user file may replace a built-in only with a higher version).

# %%
builtins = registry.load_registry(None)
custom = registry.load_file(custom_file, origin="user")
registry.merge(builtins, [custom])
replaces = " (replaces the built-in)" if custom.id in builtins else ""
check_message = f"ok: {custom.id} version {custom.version}{replaces}"
print(check_message)

# %% [markdown]
# A mistake is refused with one line naming the file, the field and the position. Two
# typical ones, written to a scratch folder (not the workspace): a misspelt column, and
# re-using a built-in id without raising its version.

# %%
scratch = OUT / "scratch"
scratch.mkdir(exist_ok=True)
bad_column = scratch / f"{CUSTOM_ID}.yaml"
bad_column.write_text(custom_file.read_text().replace("and fu90_abstinent", "and fu90_abstinant"),
                      encoding="utf-8")
same_id = scratch / "completion.yaml"
same_id.write_text(builtins["completion"].path.read_text(), encoding="utf-8")
check_errors = {}
for path in (bad_column, same_id):
    try:
        registry.merge(builtins, [registry.load_file(path, origin="user")])
        check_errors[path.name] = None
    except UserError as exc:
        check_errors[path.name] = str(exc).replace(str(scratch) + os.sep, "")
    print(f"{path.name}: {check_errors[path.name]}")

# %% [markdown]
# ## The registry with the workspace

# %%
defs = registry.load_registry(WORKSPACE)
display(pl.DataFrame([{"id": d.id, "version": d.version, "origin": d.origin, "window_days": d.window_days,
                       "missing": d.missing, "label": d.label} for d in defs.values()])
        .filter(pl.col("id").is_in([CUSTOM_ID, "completion", "abstinent_90d_cc", "abstinent_90d_itt"])
                | (pl.col("origin") == "user")))

# %% [markdown]
# ## Rates beside the built-ins
#
# `analyze` with the workspace folder, for the custom definition and the built-ins it is made
# of, overall and by level of care; `analyze` passes every rate through disclosure (CMS rule).
# `compare=False`: the comparisons follow below, for two estimators only.

# %%
COMPARE_WITH = ["completion", "abstinent_90d_cc", "abstinent_90d_itt", "followup_reached_90d"]
ids = [CUSTOM_ID, *COMPARE_WITH]
settings = Settings(warehouse=warehouse, definitions_dir=WORKSPACE)
results = analyze(settings, OUT / "analysis", ids, ["level_of_care", "level_group"], compare=False)
rates = pl.DataFrame(results["rates"], infer_schema_length=None)
overall = (rates.filter(pl.col("group_by") == "all")
           .select("definition_id", "numerator", "denominator", "rate", "ci_low", "ci_high", "ci_method", "note"))
display(overall)

# %%
by_level = (
    rates.filter(pl.col("group_by") == "level_of_care")
    .pivot(on="definition_id", index="group", values="rate")
    .select("group", *ids)
    .sort("group")
)
display(by_level.with_columns(pl.col(ids).round(3)))

# %%
plot_rates = rates.filter(pl.col("group_by").is_in(["all", "level_group"]) & pl.col("rate").is_not_null()) \
    .with_columns(pl.col("group").fill_null("all"))
groups = [g for g in ["all", "iop", "residential", "php", "outpatient", "detox", "inpatient"]
          if g in plot_rates["group"].to_list()]
fig, ax = plt.subplots(figsize=(10, 4))
width = 0.8 / len(ids)
for i, def_id in enumerate(ids):
    sub = plot_rates.filter(pl.col("definition_id") == def_id)
    xs, ys, lo, hi = [], [], [], []
    for j, g in enumerate(groups):
        row = sub.filter(pl.col("group") == g)
        if row.height:
            xs.append(j + (i - (len(ids) - 1) / 2) * width)
            ys.append(row["rate"][0])
            lo.append(row["rate"][0] - row["ci_low"][0])
            hi.append(row["ci_high"][0] - row["rate"][0])
    ax.bar(xs, ys, width=width, yerr=[lo, hi], capsize=2, label=def_id,
           hatch="//" if def_id == CUSTOM_ID else None)
ax.set_xticks(range(len(groups)), groups)
ax.set_ylim(0, 1)
ax.set_ylabel("rate (95% CI)")
ax.set_title("Custom definition beside the built-ins, by level group (small cells not shown)")
ax.legend(fontsize=8)
show(fig, "rates_by_level_group")

# %% [markdown]
# ## IOP vs residential, crude and adjusted
#
# The same question for each definition: the risk difference IOP − residential, crude and
# by augmented inverse probability weighting (AIPW), from `compare` on the analysis frame.

# %%
chosen = registry.select(defs, ids)
with connect(warehouse, read_only=True) as con:
    frame = evaluate(con, chosen)
result = compare(frame, chosen, arm="iop", reference="residential", methods=("crude", "aipw"))
rd = (result.comparisons.filter(pl.col("estimand") == "rd")
      .select("definition_id", "method", "missing_data", "estimate", "ci_low", "ci_high", "n_arm", "n_reference",
              "note"))
comparison_rows = disclosure.apply_comparisons(rd.to_dicts(), results["rates"])
comparisons = pl.DataFrame(comparison_rows, infer_schema_length=None)
display(comparisons.select("definition_id", "method", "missing_data", "estimate", "ci_low", "ci_high", "note")
        .with_columns(pl.col("estimate", "ci_low", "ci_high").round(3)))

# %% [markdown]
# ## Key numbers

# %%
key_numbers = {
    "warehouse": str(warehouse),
    "custom_id": CUSTOM_ID,
    "custom_file": str(custom_file),
    "check": check_message,
    "check_errors": check_errors,
    "registry_user_ids": sorted(d.id for d in defs.values() if d.origin == "user"),
    "definitions": [d["id"] for d in results["definitions"]],
    "overall": {r["definition_id"]: {k: r[k] for k in ("numerator", "denominator", "rate", "ci_low", "ci_high")}
                for r in overall.to_dicts()},
    "by_level_of_care": by_level.to_dicts(),
    "comparisons": [{k: r.get(k) for k in ("definition_id", "method", "estimate", "ci_low", "ci_high")}
                    for r in comparison_rows],
}
(WORKDIR / f"{SESSION.name}.json").write_text(json.dumps(key_numbers, indent=2, default=str) + "\n")
print(json.dumps(key_numbers["overall"], indent=2))
