"""The floor of ``bench_suite.py``: a plain DuckDB SQL script over the same CSV files.

No validation, no marts, no statistics: read discharges.csv and followups.csv and compute the
crude rates of completion, completion_or_transfer, abstinent_90d_itt, abstinent_90d_cc and
no_readmission_30d by level of care, with the definitions' own conventions (best follow-up
attempt per window; step-downs and transfers are not readmissions; data end date = latest
admission or discharge; a missing level of care comes from asam_level as the contract maps it).
The synthetic extracts give contact dates (not days after
discharge), so the floor reads contact_date as it is. Rows are (definition_id, level_of_care, numerator, denominator).

``STORE_SQL`` is the same floor for someone who keeps the data: the two files loaded into tables
of a DuckDB file first (types as DuckDB detects them), then the same rates read from the tables
(``floor_sql(stored=True)``). levelcare keeps a warehouse, so this tells apart what storing the rows
costs from what levelcare adds to it (checks, validation, marts).
"""

SOURCES = {"discharges": "read_csv('$DATA/discharges.csv', types = {'asam_level': 'VARCHAR'})",
           "followups": "read_csv('$DATA/followups.csv')"}
STORE_SQL = [f"create table {name} as select * from {source}" for name, source in SOURCES.items()]

FLOOR_SQL = """
with
raw as (
    select *, coalesce(lower(level_of_care), case
        when asam_level in ('3.1', '3.3', '3.5') and planned > 30 then 'residential_long'
        else case asam_level when '1' then 'outpatient' when '2.1' then 'iop' when '2.5' then 'php'
            when '3.1' then 'residential_short' when '3.3' then 'residential_short'
            when '3.5' then 'residential_short' when '3.7' then 'residential_hospital' when '4' then 'inpatient'
            when '1-wm' then 'detox' when '2-wm' then 'detox' when '3.2-wm' then 'detox' when '3.7-wm' then 'detox'
            when '4-wm' then 'detox' end end) as loc
    from (select *, $PLANNED as planned
          from $SRC_discharges)
),
d as (
    select site_id || ':' || episode_id as k, person_id, loc,
           case when loc like 'residential%' then 'residential' else loc end as grp,
           admit_date, discharge_date, lower(discharge_reason) as reason
    from raw
),
f as (
    select site_id || ':' || episode_id as k, followup_id, lower(status) as status, contact_date, abstinent_30d
    from $SRC_followups
    where window_days = 90
),
best90 as (
    select k, status = 'reached' as reached, case when status = 'reached' then abstinent_30d end as abstinent
    from f
    qualify row_number() over (partition by k order by
        case status when 'reached' then 1 when 'deceased' then 2 when 'refused' then 3
                    when 'unreachable' then 4 else 5 end,
        contact_date desc nulls last, followup_id desc) = 1
),
data_end as (select max(greatest(admit_date, discharge_date)) as end_date from d),
later as (
    select i.k, i.grp, i.reason, n.k as nk, n.loc as nloc, datediff('day', i.discharge_date, n.admit_date) as gap
    from d as i join d as n on n.person_id = i.person_id and n.k <> i.k and n.admit_date >= i.discharge_date
),
readmit as (
    select k, min(gap) filter (where not (
        (grp = 'residential' and nloc = 'iop' and kind_rank = 1 and gap <= 14)
        or (reason = 'transferred' and adm_rank = 1 and gap <= 14))) as days
    from (select *, row_number() over (partition by k order by gap, nk) as adm_rank,
                 row_number() over (partition by k, nloc = 'iop' order by gap, nk) as kind_rank from later)
    group by k
),
e as (
    select d.loc, d.reason, d.person_id, datediff('day', d.discharge_date, data_end.end_date) as observed,
           coalesce(b.reached, false) as reached, b.abstinent,
           case when d.person_id is null then null when r.days <= 30 then true
                when datediff('day', d.discharge_date, data_end.end_date) >= 30 then false end as readmit_30d
    from d cross join data_end left join best90 as b on b.k = d.k left join readmit as r on r.k = d.k
)
select 'completion', loc, count(*) filter (where reason = 'completed'), count(*) from e group by loc
union all
select 'completion_or_transfer', loc, count(*) filter (where reason in ('completed', 'transferred')), count(*)
from e group by loc
union all
select 'abstinent_90d_itt', loc, count(*) filter (where abstinent), count(*) from e where observed >= 90 group by loc
union all
select 'abstinent_90d_cc', loc, count(*) filter (where abstinent), count(abstinent) from e where reached group by loc
union all
select 'no_readmission_30d', loc, count(*) filter (where not readmit_30d), count(readmit_30d) from e
where person_id is not null group by loc
"""


def floor_sql(stored: bool = False) -> str:
    """FLOOR_SQL reading the CSV files, or (``stored``) the tables STORE_SQL made of them."""
    sql = FLOOR_SQL
    for name, source in SOURCES.items():
        sql = sql.replace(f"$SRC_{name}", name if stored else source)
    return sql
