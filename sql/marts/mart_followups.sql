-- One row per native episode x follow-up window, with the best attempt of the window (no
-- attempt: status null, reached false, attempts 0) and whether the window had ended by the data
-- end date (is_due), for response-rate and attrition analyses. Episode attributes live in
-- mart_episodes (join on episode_key). The long form of mart_episodes' fu{w}_* columns: each
-- window's columns, named without their fu{w}_ prefix, so that a column added there appears here.
with

episodes as (
    select * from mart_episodes
    where source = 'native'
),

by_window as (
    -- for each window {w}, joined by union all:
    select
        episode_key,
        {w} as window_days,
        days_observed >= {w} as is_due,
        columns('^fu{w}_(.*)$') as '\1'
    from episodes
    -- end for
),

final as (
    select
        episode_key,
        window_days,
        is_due,
        attempts,
        * exclude (episode_key, window_days, is_due, attempts)
    from by_window
)

select * from final
