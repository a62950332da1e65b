-- One row per native episode x follow-up window (30, 90, 180, 365), with the best attempt of
-- the window (no attempt: status null, reached false) and whether the window had ended by
-- the data end date (is_due), for response-rate and attrition analyses. Episode attributes
-- live in mart_episodes (join on episode_key): repeating them four times made this the
-- slowest table to write.
with

best as (
    select * from int_followup_best
),

episodes as (
    select episode_key from int_episodes
    where source = 'native'
),

windows as (
    select unnest([30, 90, 180, 365]) as window_days
),

pathways as (
    select episode_key, days_observed from int_pathways
),

final as (
    select
        episodes.episode_key,
        windows.window_days,
        pathways.days_observed >= windows.window_days as is_due,
        coalesce(best.attempts, 0) as attempts,
        best.status,
        coalesce(best.reached, false) as reached,
        best.contact_date,
        best.days_after_discharge,
        best.abstinent,
        best.use_days,
        best.readmitted,
        best.overdose,
        best.employed,
        best.homeless,
        best.arrests,
        best.phq9,
        best.gad7,
        best.er_visits
    from episodes
    cross join windows
    left join best
        on best.episode_key = episodes.episode_key
        and best.window_days = windows.window_days
    left join pathways on pathways.episode_key = episodes.episode_key
)

select * from final
