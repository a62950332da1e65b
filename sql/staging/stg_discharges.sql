-- One row per native discharge (raw_discharges), typed and keyed; no business logic.
with

source as (
    select *, rowid as episode_row from raw_discharges
),

final as (
    select
        -- '\' and ':' in site_id escaped ('\\', '\:'): site 'a:b' with episode 'c' is not site 'a'
        -- with episode 'b:c' (docs/interfaces.md)
        replace(replace(site_id, '\', '\\'), ':', '\:') || ':' || episode_id as episode_key,
        -- the raw row's rowid: the build's own joins and windows key on this integer, cheaper
        -- than the text (benchmarks/README.md, Measurements: sql/); the marts keep episode_key
        episode_row,
        episode_id,
        person_id,
        site_id,
        program_id,
        lower(level_of_care) as level_of_care,
        admit_date,
        discharge_date,
        lower(discharge_reason) as discharge_reason,
        age_band,
        lower(sex) as sex,
        lower(race) as race,
        lower(ethnicity) as ethnicity,
        lower(primary_substance) as primary_substance,
        co_occurring_mh,
        prior_episodes,
        days_waiting,
        use_days_admit,
        use_days_discharge,
        phq9_admit,
        phq9_discharge,
        gad7_admit,
        gad7_discharge,
        employed_admit,
        employed_discharge,
        homeless_admit,
        homeless_discharge,
        arrests_admit,
        arrests_discharge,
        lower(payer) as payer,
        lower(referral_source) as referral_source,
        mat,
        hours_per_week,
        sessions_attended,
        family_involved,
        satisfaction,
        episode_cost,
        _file_sha256,
        _row_number
    from source
)

select * from final
