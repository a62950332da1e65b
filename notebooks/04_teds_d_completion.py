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
# # 04 · TEDS-D: completion by service setting
#
# SAMHSA's Treatment Episode Data Set – Discharges (TEDS-D) public-use file has one row per
# discharge with the service setting (`SERVICES_D`) and the reason for discharge (`REASON`).
# Completion is "treatment completed / all discharges of the setting"; SAMHSA often also
# counts *completed or transferred* as a positive end. Completion is highest in short,
# structured settings, so comparing it raw across settings is biased by design — this notebook
# shows the rates, not a verdict.
#
# By default the file is synthetic and TEDS-D-shaped (`write_synthetic(..., fmt="teds-d")`,
# the 2017–2020 76-column layout). Point `LEVELCARE_NOTEBOOK_TEDS_FILE` at a real public-use
# CSV to run the same cells on it.
#
# **Parameters** (environment variables): `LEVELCARE_NOTEBOOK_WORKDIR` (default: a new temp
# folder), `LEVELCARE_NOTEBOOK_RECORDS` (3000), `LEVELCARE_NOTEBOOK_TEDS_RECORDS` (synthetic
# TEDS-D discharges, default the same; hospital residential is ~0.2% of TEDS-D, so it is shown
# only from about 10,000), `LEVELCARE_NOTEBOOK_SEED` (20261123), `LEVELCARE_NOTEBOOK_TEDS_YEAR`
# (2019), `LEVELCARE_NOTEBOOK_TEDS_FILE` (a real TEDS-D public-use CSV instead of synthetic).

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
from pathlib import Path

import matplotlib.pyplot as plt
import polars as pl
from IPython.display import display

from pipelines import contracts, disclosure
from pipelines.analysis.command import analyze
from pipelines.ingest.core import ingest_paths
from pipelines.settings import Settings
from pipelines.synth import write_synthetic
from pipelines.warehouse import connect

pl.Config.set_tbl_rows(40)
pl.Config.set_tbl_width_chars(160)
pl.Config.set_fmt_str_lengths(70)

SESSION = Session.from_environment("04_teds_d_completion")
WORKDIR, RECORDS, SEED, OUT, show = SESSION.workdir, SESSION.records, SESSION.seed, SESSION.out, SESSION.show
TEDS_RECORDS = int(os.environ.get("LEVELCARE_NOTEBOOK_TEDS_RECORDS") or RECORDS)
TEDS_YEAR = int(os.environ.get("LEVELCARE_NOTEBOOK_TEDS_YEAR", "2019"))
TEDS_FILE = os.environ.get("LEVELCARE_NOTEBOOK_TEDS_FILE")
print(f"workdir: {WORKDIR}")

# %% [markdown]
# ## Load TEDS-D into its own warehouse
#
# A separate warehouse keeps TEDS-D (no person identifiers, state-level) apart from a program's
# own discharges; `mart_episodes` marks its rows `source = 'teds-d'` either way.

# %%
if TEDS_FILE:
    teds_file = Path(TEDS_FILE)
    warehouse = WORKDIR / f"teds-d-{teds_file.stem}.duckdb"
else:
    teds_dir = WORKDIR / f"teds-d-{TEDS_YEAR}-{TEDS_RECORDS}-{SEED}"
    teds_file = teds_dir / "tedsd_puf.csv"
    if not teds_file.exists():
        write_synthetic(teds_dir, records=TEDS_RECORDS, seed=SEED, fmt="teds-d", teds_year=TEDS_YEAR)
    warehouse = WORKDIR / f"teds-d-{TEDS_YEAR}-{TEDS_RECORDS}-{SEED}.duckdb"
settings = Settings(warehouse=warehouse)
ledger = ingest_paths(settings, [teds_file], kind="teds-d")
display(pl.DataFrame([{"file": r.file, "status": r.status, "rows_read": r.rows_read, "rows_loaded": r.rows_loaded,
                       "rows_quarantined": r.rows_quarantined} for r in ledger]))
print(f"warehouse: {warehouse}")

# %% [markdown]
# ## Service settings
#
# `SERVICES_D` has eight codes; the contract harmonises them to levelcare's levels of care
# (the three detox settings become one, `detox`). `mart_episodes` carries the harmonised level,
# so that is the setting used below.

# %%
services = contracts.teds_codes()["tables"]["services"]
setting_codes = (
    pl.DataFrame([{"services_d": int(code), "level_of_care": level, "teds_label": label}
                  for code, (level, label) in services.items()])
    .group_by("level_of_care", maintain_order=True)
    .agg(pl.col("services_d").cast(pl.String).str.join(", ").alias("services_d"),
         pl.col("teds_label").str.join("; ").alias("TEDS-D settings"))
)
display(setting_codes)

# %% [markdown]
# ## Completion by setting
#
# The built-in definitions `completion` and `completion_or_transfer` (denominator: every
# discharge of the setting, as SAMHSA), computed by `analyze` and disclosed with the CMS
# cell-size rule (no count from 1 to 10, nor one derivable from the others).

# %%
DEFINITIONS = ["completion", "completion_or_transfer"]
results = analyze(settings, OUT / "analysis", DEFINITIONS, ["level_of_care", "level_group"], compare=False)
rates = pl.DataFrame(results["rates"], infer_schema_length=None)
by_setting = (
    rates.filter(pl.col("group_by").is_in(["all", "level_of_care"]))
    .with_columns(pl.col("group").fill_null("all settings").alias("setting"))
    .select("definition_id", "setting", "numerator", "denominator", "rate", "ci_low", "ci_high", "suppressed")
)
# published context (outcomes-standards.md): TEDS 2006 completion by setting
TEDS_2006 = {"residential_hospital": 0.70, "detox": 0.67, "residential_short": 0.59, "residential_long": 0.44,
             "outpatient": 0.40}
completion_table = (
    by_setting.pivot(on="definition_id", index="setting", values=["denominator", "rate"])
    .rename({"denominator_completion": "discharges", "rate_completion": "completion",
             "rate_completion_or_transfer": "completed or transferred"})
    .drop("denominator_completion_or_transfer")
    .with_columns(pl.col("setting").replace_strict(TEDS_2006, default=None, return_dtype=pl.Float64)
                  .alias("TEDS 2006 completion (published)"))
    .sort(pl.col("setting") == "all settings", pl.col("completion"), descending=[False, True], nulls_last=True)
)
display(completion_table.with_columns(pl.col("completion", "completed or transferred").round(3)))

# %%
plotted = by_setting.filter(pl.col("rate").is_not_null() & (pl.col("setting") != "all settings"))
settings_order = (plotted.filter(pl.col("definition_id") == "completion").sort("rate", descending=True)
                  ["setting"].to_list())
settings_order += [s for s in plotted["setting"].unique().sort().to_list() if s not in settings_order]
fig, ax = plt.subplots(figsize=(9, 4))
for i, def_id in enumerate(DEFINITIONS):
    sub = plotted.filter(pl.col("definition_id") == def_id)
    xs, ys, err = [], [], [[], []]
    for j, s in enumerate(settings_order):
        row = sub.filter(pl.col("setting") == s)
        if row.height:
            r = row.row(0, named=True)
            xs.append(j + (i - 0.5) * 0.38)
            ys.append(r["rate"])
            err[0].append(r["rate"] - r["ci_low"])
            err[1].append(r["ci_high"] - r["rate"])
    ax.bar(xs, ys, width=0.38, yerr=err, capsize=3, label=def_id)
for j, s in enumerate(settings_order):
    if s in TEDS_2006:
        ax.plot([j - 0.4, j], [TEDS_2006[s]] * 2, color="black", linewidth=2)
ax.plot([], [], color="black", linewidth=2, label="TEDS 2006 completion (published)")
ax.set_xticks(range(len(settings_order)), settings_order, rotation=20)
ax.set_ylim(0, 1)
ax.set_ylabel("share of discharges (95% CI)")
ax.set_title("TEDS-D: completion by service setting (settings with small counts not shown)")
ax.legend(fontsize=8)
show(fig, "completion_by_setting")

# %% [markdown]
# ## Reasons for discharge by setting
#
# The whole distribution behind the completion rate (counts from `mart_episodes`, disclosed).

# %%
with connect(warehouse, read_only=True) as con:
    reasons = con.sql("""
        select level_of_care as setting, coalesce(discharge_reason, 'unknown') as reason, count(*) as discharges
        from mart_episodes where source = 'teds-d'
        group by all order by all
    """).pl()
reason_wide = reasons.pivot(on="reason", index="setting", values="discharges", sort_columns=True).fill_null(0)
reason_cols = [c for c in reason_wide.columns if c != "setting"]
shown, _ = disclosure.suppress_table(reason_wide.to_pandas(), reason_cols, margins=True)
display(pl.from_pandas(shown.astype({c: "Int64" for c in [*reason_cols, "total"]})))

# %% [markdown]
# ## Key numbers

# %%
key_numbers = {
    "warehouse": str(warehouse),
    "teds_file": teds_file.name,
    "synthetic": not TEDS_FILE,
    "ledger": [{"file": r.file, "status": r.status, "rows_read": r.rows_read, "rows_loaded": r.rows_loaded}
               for r in ledger],
    "settings": sorted(by_setting.filter(pl.col("setting") != "all settings")["setting"].unique().to_list()),
    "completion_by_setting": by_setting.to_dicts(),
    "teds_2006_reference": TEDS_2006,
}
(WORKDIR / f"{SESSION.name}.json").write_text(json.dumps(key_numbers, indent=2, default=str) + "\n")
print(f"{len(key_numbers['settings'])} settings; overall completion "
      f"{by_setting.filter((pl.col('definition_id') == 'completion') & (pl.col('setting') == 'all settings'))['rate'][0]:.3f}")
