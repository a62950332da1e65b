-- One row per native episode x follow-up window (30, 90, 180, 365), with the best attempt of
-- the window (no attempt: status null, reached false) and whether the window had ended by
-- the data end date (is_due), for response-rate and attrition analyses.
with

windows as (
    select * from int_followup_windows
),

episodes as (
    select * from int_episodes
),

pathways as (
    select episode_key, days_observed from int_pathways
),

final as (
    select
        windows.episode_key,
        episodes.episode_id,
        episodes.person_id,
        episodes.site_id,
        episodes.level_of_care,
        episodes.level_group,
        episodes.discharge_quarter,
        windows.window_days,
        pathways.days_observed >= windows.window_days as is_due,
        windows.attempts,
        windows.followup_id,
        windows.status,
        windows.reached,
        windows.contact_date,
        windows.days_after_discharge,
        windows.abstinent,
        windows.use_days,
        windows.readmitted,
        windows.overdose,
        windows.employed,
        windows.homeless,
        windows.arrests,
        windows.phq9,
        windows.gad7,
        windows.er_visits
    from windows
    inner join episodes on episodes.episode_key = windows.episode_key
    left join pathways on pathways.episode_key = windows.episode_key
)

select * from final
