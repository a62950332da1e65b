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
# # 03 · How much does "IOP vs residential" depend on the definition and the estimator?
#
# One question — is the success rate after IOP lower, the same or higher than after
# residential treatment? — asked with several success definitions and every estimator
# `pipelines.analysis.comparisons.compare` offers: crude, g-computation, IPTW (ATE and ATT),
# overlap weights and AIPW; for follow-up definitions also the other missing-data policy
# (missing = failure vs complete case) and inverse probability of follow-up weighting.
#
# Read the forest plot row by row: a conclusion that changes with the estimator is a
# confounding story (sicker people go residential); one that changes with the definition is a
# "what do you call success" story. With synthetic data the true effect is known and drawn as ×.
#
# **Parameters** (environment variables):
#
# | variable | meaning | default |
# |---|---|---|
# | `LEVELCARE_NOTEBOOK_WORKDIR` | where data, warehouse and outputs go | a new temp folder |
# | `LEVELCARE_NOTEBOOK_RECORDS`, `LEVELCARE_NOTEBOOK_SEED` | synthetic data | 3000, 20261123 |
# | `LEVELCARE_NOTEBOOK_WAREHOUSE` | an existing warehouse instead of synthetic data | unset |
# | `LEVELCARE_NOTEBOOK_DEFINITIONS` | comma-separated definition ids | seven common ones (below) |
# | `LEVELCARE_NOTEBOOK_METHODS` | comma-separated estimators | all of `compare`'s |
# | `LEVELCARE_NOTEBOOK_ARM`, `LEVELCARE_NOTEBOOK_REFERENCE` | the two levels compared | iop, residential |

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

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import display

from pipelines import disclosure
from pipelines.analysis.command import analyze
from pipelines.analysis.comparative import analysis_frame
from pipelines.analysis.comparisons import DEFAULT_METHODS, compare
from pipelines.definitions import registry
from pipelines.settings import Settings
from pipelines.warehouse import connect

pl.Config.set_tbl_rows(80)
pl.Config.set_tbl_width_chars(180)
pl.Config.set_fmt_str_lengths(60)


def env_list(name: str, default: str) -> list[str]:
    return [x.strip() for x in (os.environ.get(name) or default).split(",") if x.strip()]


SESSION = Session.from_environment("03_sensitivity")
WORKDIR, RECORDS, SEED, OUT, show = SESSION.workdir, SESSION.records, SESSION.seed, SESSION.out, SESSION.show
DEFINITION_IDS = env_list("LEVELCARE_NOTEBOOK_DEFINITIONS",
                          "completion,completion_or_transfer,abstinent_discharge,abstinent_90d_itt,abstinent_90d_cc,"
                          "no_readmission_90d,phq9_response")
METHODS = env_list("LEVELCARE_NOTEBOOK_METHODS", ",".join(DEFAULT_METHODS))
ARM = os.environ.get("LEVELCARE_NOTEBOOK_ARM", "iop")
REFERENCE = os.environ.get("LEVELCARE_NOTEBOOK_REFERENCE", "residential")
print(f"workdir: {WORKDIR}\n{ARM} vs {REFERENCE}; definitions: {DEFINITION_IDS}\nmethods: {METHODS}")



# %% [markdown]
# ## The warehouse (synthetic unless `LEVELCARE_NOTEBOOK_WAREHOUSE` is set)

# %%
truth_effects = {}
warehouse, ledger = SESSION.native_warehouse()  # truth.json is the answer key, not an input
if ledger:
    display(SESSION.ledger_frame(ledger))
if SESSION.own_warehouse is None:
    data_dir = WORKDIR / f"native-{RECORDS}-{SEED}"
    # the generator's answer key: true IOP - residential risk differences (ATE) per definition
    truth = json.loads((data_dir / "truth.json").read_text())
    truth_effects = {k: v["ate"] for k, v in truth.get("effects", {}).items()
                     if isinstance(v, dict) and v.get("ate") is not None}
    # abstinence truth is over full data (as if everyone were reached): the target of both the
    # _itt and the _cc definition, which estimate it differently (and the IPFW rows best)
    for key in [k for k in truth_effects if k.startswith("abstinent_") and k.endswith("d")]:
        for policy in ("itt", "cc"):
            truth_effects.setdefault(f"{key}_{policy}", truth_effects[key])
settings = Settings(warehouse=warehouse)
print(f"warehouse: {warehouse}")

# %% [markdown]
# ## Rates of the chosen definitions by level group (disclosure applied)
#
# `analyze` also builds the marts; its disclosed rates decide below which comparisons may be
# shown. (`compare=False`: the comparisons are made below with the estimators chosen.)

# %%
definitions = registry.select(registry.load_registry(None), DEFINITION_IDS)
results = analyze(settings, OUT / "analysis", DEFINITION_IDS, ["level_group"], compare=False)
rates = pl.DataFrame(results["rates"], infer_schema_length=None)
display(rates.filter(pl.col("group").is_in([ARM, REFERENCE]) | (pl.col("group_by") == "all"))
        .with_columns(pl.col("group").fill_null("all"))
        .pivot(on="group", index="definition_id", values="rate")
        .with_columns(pl.exclude("definition_id").round(3)))

# %% [markdown]
# ## The analysis frame and the comparisons
#
# `analysis_frame` is `evaluate` (baseline columns plus one 0/1/null column per definition)
# with the follow-up columns `fu{w}_reached` joined, which `compare` needs for the follow-up
# sensitivity rows (the other missing-data policy, inverse probability of follow-up weighting).
#
# Caveat (package behaviour): `compare` treats *every* definition with `window_days` as a
# follow-up definition, so `no_readmission_90d` also gets follow-up rows although readmission
# is not measured by the follow-up interview; read those rows with that in mind.

# %%
with connect(warehouse, read_only=True) as con:
    frame = analysis_frame(con, definitions)
reached_cols = [c for c in frame.columns if c.startswith("fu") and c.endswith("_reached")]
print(f"analysis frame: {frame.height} episodes x {frame.width} columns (follow-up columns: {reached_cols})")

result = compare(frame, definitions, arm=ARM, reference=REFERENCE, methods=METHODS)
print(f"compare: {result.n} episodes in {ARM} or {REFERENCE}; {result.comparisons.height} rows; "
      f"{sum(result.timings.values()):.1f} s")

# %%
rd_rows = (result.comparisons.filter(pl.col("estimand") == "rd")
           .select("definition_id", "arm", "reference", "method", "missing_data", "estimate", "ci_low", "ci_high",
                   "p_value", "n_arm", "n_reference", "note"))
rd = pl.DataFrame(disclosure.apply_comparisons(rd_rows.to_dicts(), results["rates"]), infer_schema_length=None)
# display order: definitions as listed; within one, estimators as listed with the definition's own
# missing-data policy first, then the follow-up sensitivity rows
rank = {d: i for i, d in enumerate(DEFINITION_IDS)}
own_policy = {d.id: "itt" if d.missing == "failure" else "cc" for d in definitions}
method_rank = {m: i for i, m in enumerate([*METHODS, "ipw_followup"])}
rd = rd.with_columns(
    pl.col("definition_id").replace_strict(rank, return_dtype=pl.Int32).alias("_rank"),
    (pl.col("missing_data").is_not_null()
     & (pl.col("missing_data") != pl.col("definition_id").replace_strict(own_policy))).alias("_sensitivity"),
    pl.col("method").replace_strict(method_rank, default=len(method_rank), return_dtype=pl.Int32).alias("_method"),
    pl.when(pl.col("estimate").is_null()).then(pl.lit("not shown / not estimable"))
    .when(pl.col("ci_high") < 0).then(pl.lit(f"{ARM} lower"))
    .when(pl.col("ci_low") > 0).then(pl.lit(f"{ARM} higher"))
    .otherwise(pl.lit("no clear difference")).alias("direction"),
    (pl.col("method") + pl.when(pl.col("missing_data").is_not_null())
     .then(pl.lit(" (") + pl.col("missing_data") + pl.lit(")")).otherwise(pl.lit(""))).alias("estimator"),
).sort("_rank", "_sensitivity", "_method", maintain_order=True).drop("_rank", "_sensitivity", "_method")
display(rd.select("definition_id", "estimator", "estimate", "ci_low", "ci_high", "direction", "note")
        .with_columns(pl.col("estimate", "ci_low", "ci_high").round(3)))

# %% [markdown]
# ### Definitions × estimators: risk difference (95% CI), percentage points

# %%
cells = rd.with_columns(
    pl.when(pl.col("estimate").is_null()).then(pl.lit("—"))
    .otherwise(pl.format("{} [{}, {}]", (pl.col("estimate") * 100).round(1), (pl.col("ci_low") * 100).round(1),
                         (pl.col("ci_high") * 100).round(1))).alias("cell"))
estimator_order = list(dict.fromkeys(rd["estimator"].to_list()))
grid = cells.pivot(on="estimator", index="definition_id", values="cell").select(
    "definition_id", *[e for e in estimator_order if e in cells["estimator"].to_list()]).fill_null("")
if truth_effects:
    grid = grid.with_columns(pl.col("definition_id").replace_strict(
        {k: f"{v * 100:.1f}" for k, v in truth_effects.items()}, default="—").alias("truth (synthetic)"))
display(grid)

# %% [markdown]
# ### Does the conclusion survive the choice of estimator?

# %%
summary = (
    rd.filter(pl.col("estimate").is_not_null())
    .group_by("definition_id", maintain_order=True)
    .agg(
        pl.len().alias("estimates"),
        pl.col("estimate").min().round(3).alias("lowest"),
        pl.col("estimate").max().round(3).alias("highest"),
        pl.col("direction").filter(pl.col("method") == "crude").first().alias("crude says"),
        pl.col("direction").filter(pl.col("method") != "crude").unique().sort().str.join(" / ").alias("adjusted say"),
        pl.col("direction").n_unique().alias("distinct conclusions"),
    )
)
if truth_effects:
    summary = summary.with_columns(
        pl.col("definition_id").replace_strict(truth_effects, default=None, return_dtype=pl.Float64).round(3)
        .alias("true effect"))
display(summary)

# %% [markdown]
# ## Forest plot

# %%
plotted = rd.filter(pl.col("estimate").is_not_null())
order = [d for d in DEFINITION_IDS if d in plotted["definition_id"].to_list()]
colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(dict.fromkeys(plotted["method"].to_list()))}
labels, y = [], 0
fig, ax = plt.subplots(figsize=(9, 0.28 * plotted.height + 0.6 * len(order) + 1))
for def_id in order:
    rows = plotted.filter(pl.col("definition_id") == def_id).to_dicts()
    first_y = y
    for row in rows:
        ax.errorbar(row["estimate"], -y, xerr=[[row["estimate"] - row["ci_low"]], [row["ci_high"] - row["estimate"]]],
                    fmt="o", color=colours[row["method"]], markersize=4, capsize=2)
        labels.append((-y, f"{def_id} · {row['estimator']}"))
        y += 1
    if def_id in truth_effects:
        ax.plot([truth_effects[def_id]] * 2, [-first_y + 0.4, -(y - 1) - 0.4], color="black", linewidth=1)
        ax.plot(truth_effects[def_id], -(first_y + y - 1) / 2, "x", color="black", markersize=8)
    y += 0.8
ax.axvline(0, color="grey", linewidth=1)
ax.set_yticks([p for p, _ in labels], [t for _, t in labels], fontsize=7)
ax.set_xlabel(f"risk difference, {ARM} − {REFERENCE} (95% CI)")
ax.set_title(f"{ARM} vs {REFERENCE} by definition and estimator" + (" (× true effect)" if truth_effects else ""))
for m, c in colours.items():
    ax.plot([], [], "o", color=c, label=m)
ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
show(fig, "forest")

# %% [markdown]
# ## Diagnostics and non-inferiority
#
# An adjusted estimate is only as good as its balance and overlap (CohortMethod: every
# standardized mean difference ≤ 0.1 after weighting, equipoise ≥ 0.2). Non-inferiority uses
# the primary estimator (AIPW) with a 5 percentage-point margin.

# %%
display(result.diagnostics.select("population", "definitions", "method", "c_statistic", "equipoise",
                                  "max_abs_smd_after", "balance_passed", "overlap_passed", "passed", "note")
        .with_columns(pl.col("c_statistic", "equipoise", "max_abs_smd_after").round(3)))
display(result.noninferiority.select("definition_id", "method", "margin_pp", "estimate", "ci95_low", "ci95_high",
                                     "noninferior", "equivalent", "conclusion")
        .with_columns(pl.col("estimate", "ci95_low", "ci95_high").round(3)))

# %% [markdown]
# ## Key numbers

# %%
key_numbers = {
    "warehouse": str(warehouse),
    "arm": ARM,
    "reference": REFERENCE,
    "definitions": DEFINITION_IDS,
    "methods": METHODS,
    "followup_columns_joined": reached_cols,
    "rows": [{k: r[k] for k in ("definition_id", "method", "missing_data", "estimate", "ci_low", "ci_high",
                                "direction")} for r in rd.to_dicts()],
    "summary": summary.to_dicts(),
    "truth": {k: truth_effects[k] for k in DEFINITION_IDS if k in truth_effects},
    "noninferiority": [{k: r[k] for k in ("definition_id", "estimate", "noninferior", "conclusion")}
                       for r in result.noninferiority.to_dicts()],
    "forest_plot": str(OUT / "forest.png"),
}
(WORKDIR / f"{SESSION.name}.json").write_text(json.dumps(key_numbers, indent=2, default=str) + "\n")
print(f"{len(key_numbers['rows'])} comparison rows over {len(DEFINITION_IDS)} definitions x {len(METHODS)} methods")
