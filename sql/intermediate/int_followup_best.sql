-- The best contact attempt per episode and follow-up window (each window_days value of the
-- followups contract): reached beats deceased beats refused beats unreachable; ties go to the
-- latest contact, then to the highest followup_id. Measurements are kept only when the person
-- was reached. Windows without any attempt have no row here (mart_episodes fills them in).
-- Keyed by episode_row (stg_discharges); attempts of no discharge have no episode and are left
-- out.
with

followups as (
    select * from int_followups
    where window_days in ({followup_windows}) and episode_row is not null
),

ranked as (
    select
        *,
        count(*) over (partition by episode_row, window_days) as attempts,
        row_number() over (
            partition by episode_row, window_days
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

final as (
    select
        episode_row,
        window_days,
        attempts::integer as attempts,
        followup_id,
        status,
        status = 'reached' as reached,
        contact_date,
        days_after_discharge,
        case when status = 'reached' then abstinent_30d end as abstinent,
        case when status = 'reached' then use_days_30 end as use_days,
        case when status = 'reached' then readmitted end as readmitted,
        case when status = 'reached' then overdose end as overdose,
        case when status = 'reached' then employed end as employed,
        case when status = 'reached' then homeless end as homeless,
        case when status = 'reached' then arrests_30 end as arrests,
        case when status = 'reached' then phq9 end as phq9,
        case when status = 'reached' then gad7 end as gad7,
        case when status = 'reached' then er_visits_30 end as er_visits
    from ranked
    where attempt_rank = 1
)

select * from final
