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
# # 01 · Rerun a stored analysis and explore the marts
#
# What this notebook does, all through the levelcare package:
#
# 1. opens a warehouse (by default a fresh one holding synthetic data with a known true effect);
# 2. takes the latest analysis run from the run registry, or records one first when there is none;
# 3. reruns it from the inputs its manifest names and checks that every rate is reproduced;
# 4. explores `mart_episodes`: episodes by level of care and discharge quarter, and follow-up response.
#
# Only aggregates are shown, and every count passes through `pipelines.disclosure` (CMS
# cell-size rule: no count from 1 to 10, nor one that can be worked out from shown totals).
#
# **Parameters** (environment variables):
#
# | variable | meaning | default |
# |---|---|---|
# | `LEVELCARE_NOTEBOOK_WORKDIR` | where synthetic data, warehouse and outputs go | a new temp folder |
# | `LEVELCARE_NOTEBOOK_RECORDS` | synthetic episodes | 3000 |
# | `LEVELCARE_NOTEBOOK_SEED` | synthetic seed | 20261123 |
# | `LEVELCARE_NOTEBOOK_WAREHOUSE` | use this existing warehouse instead of synthetic data | unset |

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
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import display

from pipelines import disclosure, runs
from pipelines.analysis.command import analyze
from pipelines.settings import Settings
from pipelines.warehouse import connect

pl.Config.set_tbl_rows(40)
pl.Config.set_tbl_width_chars(160)

SESSION = Session.from_environment("01_rerun_and_explore")
WORKDIR, RECORDS, SEED, OUT, show = SESSION.workdir, SESSION.records, SESSION.seed, SESSION.out, SESSION.show
print(f"workdir: {WORKDIR}")

# %% [markdown]
# ## The warehouse
#
# Without `LEVELCARE_NOTEBOOK_WAREHOUSE`, synthetic native extracts (discharges and follow-ups)
# are written once per (records, seed) and ingested; ingesting them again is a no-op (the
# ledger says *duplicate*), so the notebooks of this folder can share one workdir.

# %%
warehouse, ledger = SESSION.native_warehouse()  # truth.json is the answer key, not an input
if ledger:
    display(SESSION.ledger_frame(ledger))
settings = Settings(warehouse=warehouse)
print(f"warehouse: {settings.warehouse}")

# %% [markdown]
# ## The run registry
#
# `levelcare run` (and `levelcare demo`) record every analysis with a manifest: inputs by
# sha256, definition texts, parameters, package versions. If this warehouse has no run yet we
# make one the way the quarterly flow does: `analyze` (rates and the IOP vs residential
# comparisons), then `record_analysis_run`. To keep it quick, for a few definitions only.

# %%
with connect(settings.warehouse, read_only=True) as con:
    recorded = runs.list_runs(con)

if not recorded:
    run_id = runs.new_run_id()
    run_dir = OUT / "runs" / run_id
    parameters = {"by": ["level_of_care", "level_group", "quarter"], "seed": SEED,
                  "definitions": ["completion", "followup_reached_90d", "followup_reached_180d"],
                  "source": "notebooks/01_rerun_and_explore.py"}
    analyze(settings, run_dir, parameters["definitions"], parameters["by"], run_id=run_id)
    runs.record_analysis_run(settings, run_id, run_dir, parameters, command="notebook")
    with connect(settings.warehouse, read_only=True) as con:
        recorded = runs.list_runs(con)

display(pl.DataFrame([{
    "run_id": r.run_id, "created_at": r.created_at, "command": r.command, "status": r.status,
    "inputs": len(r.manifest.get("inputs", [])), "definitions": len(r.manifest.get("definitions", [])),
    "by": ",".join(r.manifest.get("parameters", {}).get("by") or []),
} for r in recorded]))
original = recorded[-1]
print(f"rerunning {original.run_id} (code version then: {original.manifest.get('code_version')})")

# %% [markdown]
# ## Rerun and check reproduction
#
# `runs.rerun` rebuilds the warehouse as the run saw it (only the manifest's input files) with
# the definitions' stored texts, and analyzes again. The rerun must give the same numerators,
# denominators and intervals for every definition and group, and the same comparisons.

# %%
rerun_dir = OUT / "rerun"
outcome = runs.rerun(settings, original.run_id, rerun_dir)
print(outcome)

keys = ["definition_id", "definition_version", "group_by", "group"]
values = ["numerator", "denominator", "rate", "ci_low", "ci_high"]
after = pl.read_csv(rerun_dir / "rates.csv", infer_schema_length=None)
original_rates = Path(original.out_dir or "") / "rates.csv"
if original.out_dir and original_rates.is_file():
    before = pl.read_csv(original_rates, infer_schema_length=None)
    joined = before.select(keys + values).join(after.select(keys + values), on=keys, how="full",
                                               suffix="_rerun", nulls_equal=True)
    differs = pl.col("definition_id").is_null() | pl.col("definition_id_rerun").is_null()
    for v in values:
        differs = differs | pl.col(v).ne_missing(pl.col(f"{v}_rerun"))
    rows_differing = joined.filter(differs).height
    reproduced = rows_differing == 0 and before.height == after.height
    print(f"{before.height} rate rows before, {after.height} after; rows that differ: {rows_differing}")
    print("REPRODUCED" if reproduced else "NOT REPRODUCED")
else:
    rows_differing, reproduced = None, None
    print(f"the original outputs are no longer at {original.out_dir}: nothing to compare the rerun with")

rerun_results = json.loads((rerun_dir / "results.json").read_text())
comparisons_differing = None
if reproduced is not None:
    original_results = json.loads((Path(original.out_dir) / "results.json").read_text())

    def estimates(results: dict) -> dict:
        return {(c["definition_id"], c["estimand"], c["method"], c.get("missing_data"), c.get("population")):
                (c["estimate"], c["ci_low"], c["ci_high"]) for c in results.get("comparisons", [])}

    then, now = estimates(original_results), estimates(rerun_results)
    comparisons_differing = len(set(then) ^ set(now)) + sum(then[k] != now[k] for k in set(then) & set(now))
    print(f"{len(then)} comparison rows before, {len(now)} after; rows that differ: {comparisons_differing}")
    reproduced = reproduced and comparisons_differing == 0
    print("COMPARISONS REPRODUCED" if comparisons_differing == 0 else "COMPARISONS NOT REPRODUCED")

# %% [markdown]
# ### The rerun's rates, overall and by level group (`analyze` applies disclosure)

# %%
shown_rates = pl.DataFrame(rerun_results["rates"], infer_schema_length=None)
by_group = (
    shown_rates.filter(pl.col("group_by").is_in(["all", "level_group"]))
    .with_columns(pl.col("group").fill_null("all"))
    .pivot(on="group", index="definition_id", values="rate")
    .sort("definition_id")
)
display(by_group.with_columns(pl.exclude("definition_id").round(3)))

# %% [markdown]
# ### The rerun's IOP vs residential comparisons (risk difference)

# %%
rerun_comparisons = pl.DataFrame(rerun_results.get("comparisons", []), infer_schema_length=None)
if rerun_comparisons.height:
    display(rerun_comparisons.filter(pl.col("estimand") == "rd")
            .select("definition_id", "method", "missing_data", "estimate", "ci_low", "ci_high")
            .with_columns(pl.col("estimate", "ci_low", "ci_high").round(3)))

# %% [markdown]
# ## Explore `mart_episodes`: level of care × discharge quarter

# %%
with connect(settings.warehouse, read_only=True) as con:
    by_quarter = con.sql("""
        select source, level_group, level_of_care, discharge_quarter, count(*) as episodes
        from mart_episodes
        group by all
        order by all
    """).pl()
    level_order = con.sql("""
        select level_of_care, count(*) as n from mart_episodes group by all order by n desc
    """).pl()["level_of_care"].to_list()

wide = by_quarter.pivot(on="discharge_quarter", index=["source", "level_group", "level_of_care"],
                        values="episodes", sort_columns=True).fill_null(0)
quarters = [c for c in wide.columns if c not in ("source", "level_group", "level_of_care")]
shown, hidden = disclosure.suppress_table(wide.to_pandas(), quarters, groups="source", margins=True)
episodes_table = pl.from_pandas(shown.astype({c: "Int64" for c in [*quarters, "total"]})).with_columns(
    # the margin row of each source is labelled "total" in the last label column only
    pl.when(pl.col("level_of_care") == "total").then(pl.lit("total")).otherwise(pl.col("level_group"))
    .alias("level_group"))
display(episodes_table)

# %%
plot_data = episodes_table.filter(pl.col("level_of_care") != "total")
fig, ax = plt.subplots(figsize=(9, 4))
bottom = [0] * len(quarters)
for loc in [x for x in level_order if x in plot_data["level_of_care"].to_list()]:
    row = plot_data.filter(pl.col("level_of_care") == loc).select(quarters).sum()
    heights = [int(row[q][0] or 0) for q in quarters]  # a hidden cell is drawn as 0
    ax.bar(quarters, heights, bottom=bottom, label=loc)
    bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
ax.set_ylabel("episodes (discharges)")
ax.set_title("Episodes by level of care and discharge quarter (cells 1-10 not shown)")
ax.legend(fontsize=8, ncols=2)
ax.tick_params(axis="x", rotation=45)
show(fig, "episodes_by_quarter")

# %% [markdown]
# ## Follow-up response
#
# Follow-up response is itself a quality indicator (GPRA holds grantees to 80%). First the
# status of the best attempt per window from the mart, then the response *rate* as the
# registry defines it (`followup_reached_90d`, `followup_reached_180d`: windows that have ended,
# deaths out of the denominator), from the rerun's results.

# %%
with connect(settings.warehouse, read_only=True) as con:
    status = con.sql("""
        select w.window_days, e.level_group,
               coalesce(case w.window_days when 30 then fu30_status when 90 then fu90_status
                                           when 180 then fu180_status else fu365_status end,
                        'no attempt') as status,
               count(*) as episodes
        from mart_episodes e, (values (30), (90), (180), (365)) as w(window_days)
        where e.source = 'native'
        group by all order by all
    """).pl()
status_wide = status.pivot(on="status", index=["window_days", "level_group"], values="episodes",
                           sort_columns=True).fill_null(0)
status_cols = [c for c in status_wide.columns if c not in ("window_days", "level_group")]
shown, _ = disclosure.suppress_table(status_wide.to_pandas(), status_cols, groups="window_days", margins="rows")
display(pl.from_pandas(shown.astype({c: "Int64" for c in [*status_cols, "total"]})))

# %%
response = (
    shown_rates.filter(pl.col("definition_id").str.starts_with("followup_reached_")
                       & pl.col("group_by").is_in(["all", "level_group"]))
    .with_columns(pl.col("group").fill_null("all"))
    .select("definition_id", "group", "numerator", "denominator", "rate", "ci_low", "ci_high", "note")
    .sort("definition_id", "group")
)
display(response)

fig, ax = plt.subplots(figsize=(8, 3.5))
plotted = response.filter(pl.col("rate").is_not_null())
labels = [f"{d.removeprefix('followup_reached_')} · {g}" for d, g in plotted.select("definition_id", "group").rows()]
ax.errorbar(plotted["rate"], range(plotted.height),
            xerr=[plotted["rate"] - plotted["ci_low"], plotted["ci_high"] - plotted["rate"]], fmt="o")
ax.axvline(0.8, color="grey", linestyle="--", label="GPRA target 80%")
ax.set_yticks(range(plotted.height), labels)
ax.set_xlim(0, 1)
ax.set_xlabel("share reached (95% CI)")
ax.legend(loc="lower right")
ax.set_title("Follow-up response by window and level group")
show(fig, "followup_response")

# %% [markdown]
# ## Key numbers
#
# Left in the workdir for whoever runs this notebook unattended (the tests read it).

# %%
overall = {r["definition_id"]: r for r in rerun_results["rates"] if r["group_by"] == "all"}
key_numbers = {
    "warehouse": str(settings.warehouse),
    "run_id": original.run_id,
    "rerun_id": outcome["run_id"],
    "rerun_of": outcome["rerun_of"],
    "reproduced": reproduced,
    "rate_rows": after.height,
    "rows_differing": rows_differing,
    "comparisons_differing": comparisons_differing,
    "comparison_rows": len(rerun_results.get("comparisons", [])),
    "definitions": sorted(overall),
    "episodes_total": int(by_quarter["episodes"].sum()),
    "quarters": quarters,
    "levels_of_care": level_order,
    "followup_response": [
        {k: r[k] for k in ("definition_id", "group", "numerator", "denominator", "rate", "ci_low", "ci_high")}
        for r in response.to_dicts()
    ],
    "overall_rates": {
        d: r["rate"]
        for d, r in sorted({r["definition_id"]: r for r in shown_rates.filter(pl.col("group_by") == "all")
                            .to_dicts()}.items())
    },
}
(WORKDIR / f"{SESSION.name}.json").write_text(json.dumps(key_numbers, indent=2, default=str) + "\n")
print(json.dumps({k: key_numbers[k] for k in ("run_id", "rerun_id", "reproduced", "rate_rows", "episodes_total")},
                 indent=2))
