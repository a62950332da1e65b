-- One row per follow-up contact attempt, with the discharge it follows up (the one of the same
-- site_id and episode_id): contact_date and days_after_discharge both resolved from whichever
-- the attempt gave, against the discharge date.
with

followups as (
    select * from stg_followups
),

discharges as (
    select site_id, episode_id, episode_row, discharge_date from stg_discharges
),

resolved as (
    select
        followups.*,
        discharges.episode_row,
        discharges.discharge_date,
        coalesce(
            followups.contact_date,
            discharges.discharge_date + followups.days_after_discharge::integer
        ) as resolved_contact_date
    from followups
    left join discharges
        on discharges.site_id = followups.site_id
        and discharges.episode_id = followups.episode_id
),

final as (
    select
        -- the episode: the discharge's episode_row (stg_discharges); null when no discharge has
        -- this site and episode_id (the build joins on it, so no episode_key is needed here)
        episode_row,
        * exclude (episode_row, discharge_date, resolved_contact_date) replace (
            resolved_contact_date as contact_date,
            coalesce(
                days_after_discharge,
                datediff('day', discharge_date, resolved_contact_date)
            )::integer as days_after_discharge
        )
    from resolved
)

select * from final
