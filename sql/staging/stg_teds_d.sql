-- One row per TEDS-D discharge (raw_teds_d, already harmonised to native words by ingestion).
-- LOS stays the TEDS ordinal code: above 30 it is a band, never a number of days.
with

source as (
    select *, -1 - rowid as episode_row from raw_teds_d
),

final as (
    select
        -- '\' and ':' in site_id escaped ('\\', '\:'): site 'a:b' with episode 'c' is not site 'a'
        -- with episode 'b:c' (docs/interfaces.md)
        replace(replace(site_id, '\', '\\'), ':', '\:') || ':' || episode_id as episode_key,
        -- negative (-1 - rowid), so that it never equals a native discharge's (stg_discharges)
        episode_row,
        episode_id,
        site_id,
        discharge_year,
        teds_era,
        services_d,
        lower(level_of_care) as level_of_care,
        lower(discharge_reason) as discharge_reason,
        los_code,
        age_band,
        lower(sex) as sex,
        lower(race) as race,
        lower(ethnicity) as ethnicity,
        lower(primary_substance) as primary_substance,
        co_occurring_mh,
        has_prior_episodes,
        lower(use_frequency_admit) as use_frequency_admit,
        lower(use_frequency_discharge) as use_frequency_discharge,
        employed_admit,
        employed_discharge,
        homeless_admit,
        homeless_discharge,
        arrests_admit,
        arrests_discharge,
        lower(referral_source) as referral_source,
        lower(payer) as payer,
        mat,
        _file_sha256,
        _row_number
    from source
)

select * from final
