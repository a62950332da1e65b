-- materialized: view
-- One row per follow-up contact attempt (raw_followups). A row may give days_after_discharge
-- instead of contact_date; both are resolved here against the episode's discharge date.
with

source as (
    select * from raw_followups
),

discharges as (
    select site_id, episode_id, discharge_date, rowid as episode_row from raw_discharges
),

resolved as (
    select
        source.*,
        discharges.discharge_date,
        discharges.episode_row,
        coalesce(
            source.contact_date,
            discharges.discharge_date + source.days_after_discharge::integer
        ) as resolved_contact_date
    from source
    left join discharges
        on discharges.site_id = source.site_id
        and discharges.episode_id = source.episode_id
),

final as (
    select
        -- the episode: the discharge's episode_row (stg_discharges); null when no discharge has
        -- this site and episode_id (the build joins on it, so no episode_key is needed here)
        episode_row,
        followup_id,
        episode_id,
        site_id,
        window_days,
        resolved_contact_date as contact_date,
        coalesce(
            days_after_discharge,
            datediff('day', discharge_date, resolved_contact_date)
        )::integer as days_after_discharge,
        lower(status) as status,
        abstinent_30d,
        use_days_30,
        readmitted,
        overdose,
        employed,
        homeless,
        arrests_30,
        phq9,
        gad7,
        er_visits_30,
        _file_sha256,
        _row_number
    from resolved
)

select * from final
