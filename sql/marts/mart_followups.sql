-- materialized: view
-- One row per native episode x follow-up window (30, 90, 180, 365), with the best attempt of
-- the window (no attempt: status null, reached false, attempts 0) and whether the window had
-- ended by the data end date (is_due), for response-rate and attrition analyses. Episode
-- attributes live in mart_episodes (join on episode_key). A view: the long form of
-- mart_episodes' fu{w}_* columns, computed when read (writing its 6.8 million rows at 1.7M
-- episodes was a fifth of the marts' build).
with

episodes as (
    select * from mart_episodes
    where source = 'native'
),

windows as (
    select unnest([30, 90, 180, 365]) as window_days
),

final as (
    select
        episodes.episode_key,
        windows.window_days,
        episodes.days_observed >= windows.window_days as is_due,
        case windows.window_days
            when 30 then episodes.fu30_attempts when 90 then episodes.fu90_attempts
            when 180 then episodes.fu180_attempts else episodes.fu365_attempts
        end as attempts,
        case windows.window_days
            when 30 then episodes.fu30_status when 90 then episodes.fu90_status
            when 180 then episodes.fu180_status else episodes.fu365_status
        end as status,
        case windows.window_days
            when 30 then episodes.fu30_reached when 90 then episodes.fu90_reached
            when 180 then episodes.fu180_reached else episodes.fu365_reached
        end as reached,
        case windows.window_days
            when 30 then episodes.fu30_contact_date when 90 then episodes.fu90_contact_date
            when 180 then episodes.fu180_contact_date else episodes.fu365_contact_date
        end as contact_date,
        case windows.window_days
            when 30 then episodes.fu30_days_after_discharge when 90 then episodes.fu90_days_after_discharge
            when 180 then episodes.fu180_days_after_discharge else episodes.fu365_days_after_discharge
        end as days_after_discharge,
        case windows.window_days
            when 30 then episodes.fu30_abstinent when 90 then episodes.fu90_abstinent
            when 180 then episodes.fu180_abstinent else episodes.fu365_abstinent
        end as abstinent,
        case windows.window_days
            when 30 then episodes.fu30_use_days when 90 then episodes.fu90_use_days
            when 180 then episodes.fu180_use_days else episodes.fu365_use_days
        end as use_days,
        case windows.window_days
            when 30 then episodes.fu30_readmitted when 90 then episodes.fu90_readmitted
            when 180 then episodes.fu180_readmitted else episodes.fu365_readmitted
        end as readmitted,
        case windows.window_days
            when 30 then episodes.fu30_overdose when 90 then episodes.fu90_overdose
            when 180 then episodes.fu180_overdose else episodes.fu365_overdose
        end as overdose,
        case windows.window_days
            when 30 then episodes.fu30_employed when 90 then episodes.fu90_employed
            when 180 then episodes.fu180_employed else episodes.fu365_employed
        end as employed,
        case windows.window_days
            when 30 then episodes.fu30_homeless when 90 then episodes.fu90_homeless
            when 180 then episodes.fu180_homeless else episodes.fu365_homeless
        end as homeless,
        case windows.window_days
            when 30 then episodes.fu30_arrests when 90 then episodes.fu90_arrests
            when 180 then episodes.fu180_arrests else episodes.fu365_arrests
        end as arrests,
        case windows.window_days
            when 30 then episodes.fu30_phq9 when 90 then episodes.fu90_phq9
            when 180 then episodes.fu180_phq9 else episodes.fu365_phq9
        end as phq9,
        case windows.window_days
            when 30 then episodes.fu30_gad7 when 90 then episodes.fu90_gad7
            when 180 then episodes.fu180_gad7 else episodes.fu365_gad7
        end as gad7,
        case windows.window_days
            when 30 then episodes.fu30_er_visits when 90 then episodes.fu90_er_visits
            when 180 then episodes.fu180_er_visits else episodes.fu365_er_visits
        end as er_visits
    from episodes
    cross join windows
)

select * from final
