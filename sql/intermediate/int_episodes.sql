-- Native and TEDS-D discharges in one harmonised shape: level group, discharge quarter,
-- length of stay in days (native only) and as the TEDS LOS code (everyone).
-- Its columns, in order, are mart_episodes' first ones (data_contracts/marts/mart_episodes.yaml)
-- with episode_row after episode_key.
with

native as (
    select * from stg_discharges
),

teds as (
    select * from stg_teds_d
),

native_shaped as (
    select
        *,
        'native' as source,
        year(discharge_date)::integer as discharge_year,
        datediff('day', admit_date, discharge_date)::integer as los_days,
        -- TEDS adds one day to ambulatory stays (a same-day visit is 1 day); do the same so
        -- native and TEDS-D bands mean the same thing.
        datediff('day', admit_date, discharge_date)::integer
            + case when level_of_care in ('outpatient', 'iop', 'php') then 1 else 0 end
            as band_days,
        prior_episodes > 0 as has_prior_episodes,
        -- the TEDS FREQ scale, derived from days so both sources share one column
        case
            when use_days_admit is null then null
            when use_days_admit = 0 then 'none'
            when use_days_admit >= 30 then 'daily'
            else 'some'
        end as use_frequency_admit,
        case
            when use_days_discharge is null then null
            when use_days_discharge = 0 then 'none'
            when use_days_discharge >= 30 then 'daily'
            else 'some'
        end as use_frequency_discharge
    from native
),

teds_shaped as (
    select
        * replace (discharge_year::integer as discharge_year),
        'teds-d' as source
    from teds
),

-- by name: a column of one source only (TEDS-D has no person, dates, days of use, PHQ-9 or
-- GAD-7 scores, dose, attendance, family or cost fields; native records no LOS code) is null
-- in the other's rows
unioned as (
    select * from native_shaped
    union all by name
    select * from teds_shaped
),

final as (
    select
        episode_key,
        episode_row,
        episode_id,
        person_id,
        site_id,
        source,
        level_of_care,
        case
            when level_of_care like 'residential%' then 'residential'
            when level_of_care in ('outpatient', 'iop', 'php', 'inpatient', 'detox') then level_of_care
        end as level_group,
        admit_date,
        discharge_date,
        case
            when discharge_date is not null
                then year(discharge_date)::varchar || 'Q' || quarter(discharge_date)::varchar
        end as discharge_quarter,
        discharge_year,
        los_days,
        case
            when source = 'teds-d' then los_code
            when band_days is null then null
            when band_days <= 30 then greatest(band_days, 1)
            when band_days <= 45 then 31
            when band_days <= 60 then 32
            when band_days <= 90 then 33
            when band_days <= 120 then 34
            when band_days <= 180 then 35
            when band_days <= 365 then 36
            else 37
        end::integer as los_band,
        discharge_reason,
        discharge_reason = 'completed' as is_completed,
        discharge_reason = 'transferred' as is_transferred,
        age_band,
        sex,
        race,
        ethnicity,
        primary_substance,
        co_occurring_mh,
        prior_episodes,
        has_prior_episodes,
        use_days_admit,
        use_days_discharge,
        use_frequency_admit,
        use_frequency_discharge,
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
        payer,
        referral_source,
        mat,
        hours_per_week,
        sessions_attended,
        family_involved,
        episode_cost
    from unioned
)

select * from final
