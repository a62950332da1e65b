-- The analysis grain: one row per episode, native and TEDS-D alike (columns:
-- data_contracts/marts/mart_episodes.yaml). Follow-up columns fu{w}_* come from the best attempt
-- of each window; pathway columns from int_pathways. TEDS-D rows have no follow-ups or person
-- links: those columns are null (fu{w}_reached false).
with

episodes as (
    select * from int_episodes
),

-- read once per window below: not materialized, or DuckDB copies the whole table
-- first (benchmarks/README.md, Measurements: sql/)
followup_best as not materialized (
    select * from int_followup_best
),

pathways as (
    select * from int_pathways
),

final as (
    select
        episodes.* exclude (episode_row),
        -- for each window {w}:
        fu{w}.status as fu{w}_status,
        coalesce(fu{w}.reached, false) as fu{w}_reached,
        case when episodes.source = 'native' then coalesce(fu{w}.attempts, 0) end as fu{w}_attempts,
        fu{w}.contact_date as fu{w}_contact_date,
        fu{w}.days_after_discharge as fu{w}_days_after_discharge,
        fu{w}.abstinent as fu{w}_abstinent,
        fu{w}.use_days as fu{w}_use_days,
        fu{w}.readmitted as fu{w}_readmitted,
        fu{w}.overdose as fu{w}_overdose,
        fu{w}.employed as fu{w}_employed,
        fu{w}.homeless as fu{w}_homeless,
        fu{w}.arrests as fu{w}_arrests,
        fu{w}.phq9 as fu{w}_phq9,
        fu{w}.gad7 as fu{w}_gad7,
        fu{w}.er_visits as fu{w}_er_visits,
        -- end for
        pathways.days_observed,
        pathways.readmit_30d,
        pathways.readmit_90d,
        pathways.readmit_180d,
        pathways.days_to_readmission,
        pathways.stepdown_iop_14d,
        pathways.days_to_stepdown,
        pathways.stepdown_14d,
        pathways.stepdown_30d,
        pathways.followup_care_7d,
        pathways.followup_care_30d,
        pathways.days_to_followup_care,
        pathways.further_care_30d
    from episodes
    -- for each window {w}:
    left join followup_best as fu{w}
        on fu{w}.episode_row = episodes.episode_row and fu{w}.window_days = {w}
    -- end for
    left join pathways on pathways.episode_row = episodes.episode_row
)

select * from final
