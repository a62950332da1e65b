-- Native episode x follow-up window (30, 90, 180, 365 days) with the best contact attempt of
-- that window: reached beats deceased beats refused beats unreachable; ties go to the latest
-- contact. Measurements are kept only when the person was reached.
with

episodes as (
    select episode_key from int_episodes where source = 'native'
),

followups as (
    select * from stg_followups
),

windows as (
    select unnest([30, 90, 180, 365]) as window_days
),

ranked as (
    select
        *,
        count(*) over (partition by episode_key, window_days) as attempts,
        row_number() over (
            partition by episode_key, window_days
            order by
                case status
                    when 'reached' then 1
                    when 'deceased' then 2
                    when 'refused' then 3
                    when 'unreachable' then 4
                    else 5
                end,
                contact_date desc nulls last,
                followup_id desc
        ) as attempt_rank
    from followups
),

best as (
    select * from ranked where attempt_rank = 1
),

final as (
    select
        episodes.episode_key,
        windows.window_days,
        coalesce(best.attempts, 0)::integer as attempts,
        best.followup_id,
        best.status,
        coalesce(best.status = 'reached', false) as reached,
        best.contact_date,
        best.days_after_discharge,
        case when best.status = 'reached' then best.abstinent_30d end as abstinent,
        case when best.status = 'reached' then best.use_days_30 end as use_days,
        case when best.status = 'reached' then best.readmitted end as readmitted,
        case when best.status = 'reached' then best.overdose end as overdose,
        case when best.status = 'reached' then best.employed end as employed,
        case when best.status = 'reached' then best.homeless end as homeless,
        case when best.status = 'reached' then best.arrests_30 end as arrests,
        case when best.status = 'reached' then best.phq9 end as phq9,
        case when best.status = 'reached' then best.gad7 end as gad7,
        case when best.status = 'reached' then best.er_visits_30 end as er_visits
    from episodes
    cross join windows
    left join best
        on best.episode_key = episodes.episode_key
        and best.window_days = windows.window_days
)

select * from final
