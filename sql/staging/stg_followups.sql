-- One row per follow-up contact attempt (raw_followups), typed; no business logic. A row may
-- give days_after_discharge instead of contact_date: int_followups resolves both against the
-- episode's discharge.
with

source as (
    select * from raw_followups
),

final as (
    select
        followup_id,
        episode_id,
        site_id,
        window_days,
        contact_date,
        days_after_discharge,
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
    from source
)

select * from final
