-- The analysis grain: one row per episode, native and TEDS-D alike (columns: docs/interfaces.md).
-- Follow-up columns fu{w}_* come from the best attempt of each window; pathway columns from
-- int_pathways. TEDS-D rows have no follow-ups or person links: those columns are null
-- (fu{w}_reached false).
with

episodes as (
    select * from int_episodes
),

-- read four times below (one window each): not materialized, or DuckDB copies the whole table
-- first (at 25 M episodes 29 M rows, 35 of the model's 166 s)
followup_best as not materialized (
    select * from int_followup_best
),

pathways as (
    select * from int_pathways
),

final as (
    select
        episodes.episode_key,
        episodes.episode_id,
        episodes.person_id,
        episodes.site_id,
        episodes.source,
        episodes.level_of_care,
        episodes.level_group,
        episodes.admit_date,
        episodes.discharge_date,
        episodes.discharge_quarter,
        episodes.discharge_year,
        episodes.los_days,
        episodes.los_band,
        episodes.discharge_reason,
        episodes.is_completed,
        episodes.is_transferred,
        episodes.age_band,
        episodes.sex,
        episodes.race,
        episodes.ethnicity,
        episodes.primary_substance,
        episodes.co_occurring_mh,
        episodes.prior_episodes,
        episodes.has_prior_episodes,
        episodes.use_days_admit,
        episodes.use_days_discharge,
        episodes.use_frequency_admit,
        episodes.use_frequency_discharge,
        episodes.phq9_admit,
        episodes.phq9_discharge,
        episodes.gad7_admit,
        episodes.gad7_discharge,
        episodes.employed_admit,
        episodes.employed_discharge,
        episodes.homeless_admit,
        episodes.homeless_discharge,
        episodes.arrests_admit,
        episodes.arrests_discharge,
        episodes.payer,
        episodes.referral_source,
        episodes.mat,
        episodes.hours_per_week,
        episodes.sessions_attended,
        episodes.family_involved,
        episodes.episode_cost,
        fu30.status as fu30_status,
        coalesce(fu30.reached, false) as fu30_reached,
        case when episodes.source = 'native' then coalesce(fu30.attempts, 0) end as fu30_attempts,
        fu30.contact_date as fu30_contact_date,
        fu30.days_after_discharge as fu30_days_after_discharge,
        fu30.abstinent as fu30_abstinent,
        fu30.use_days as fu30_use_days,
        fu30.readmitted as fu30_readmitted,
        fu30.overdose as fu30_overdose,
        fu30.employed as fu30_employed,
        fu30.homeless as fu30_homeless,
        fu30.arrests as fu30_arrests,
        fu30.phq9 as fu30_phq9,
        fu30.gad7 as fu30_gad7,
        fu30.er_visits as fu30_er_visits,
        fu90.status as fu90_status,
        coalesce(fu90.reached, false) as fu90_reached,
        case when episodes.source = 'native' then coalesce(fu90.attempts, 0) end as fu90_attempts,
        fu90.contact_date as fu90_contact_date,
        fu90.days_after_discharge as fu90_days_after_discharge,
        fu90.abstinent as fu90_abstinent,
        fu90.use_days as fu90_use_days,
        fu90.readmitted as fu90_readmitted,
        fu90.overdose as fu90_overdose,
        fu90.employed as fu90_employed,
        fu90.homeless as fu90_homeless,
        fu90.arrests as fu90_arrests,
        fu90.phq9 as fu90_phq9,
        fu90.gad7 as fu90_gad7,
        fu90.er_visits as fu90_er_visits,
        fu180.status as fu180_status,
        coalesce(fu180.reached, false) as fu180_reached,
        case when episodes.source = 'native' then coalesce(fu180.attempts, 0) end as fu180_attempts,
        fu180.contact_date as fu180_contact_date,
        fu180.days_after_discharge as fu180_days_after_discharge,
        fu180.abstinent as fu180_abstinent,
        fu180.use_days as fu180_use_days,
        fu180.readmitted as fu180_readmitted,
        fu180.overdose as fu180_overdose,
        fu180.employed as fu180_employed,
        fu180.homeless as fu180_homeless,
        fu180.arrests as fu180_arrests,
        fu180.phq9 as fu180_phq9,
        fu180.gad7 as fu180_gad7,
        fu180.er_visits as fu180_er_visits,
        fu365.status as fu365_status,
        coalesce(fu365.reached, false) as fu365_reached,
        case when episodes.source = 'native' then coalesce(fu365.attempts, 0) end as fu365_attempts,
        fu365.contact_date as fu365_contact_date,
        fu365.days_after_discharge as fu365_days_after_discharge,
        fu365.abstinent as fu365_abstinent,
        fu365.use_days as fu365_use_days,
        fu365.readmitted as fu365_readmitted,
        fu365.overdose as fu365_overdose,
        fu365.employed as fu365_employed,
        fu365.homeless as fu365_homeless,
        fu365.arrests as fu365_arrests,
        fu365.phq9 as fu365_phq9,
        fu365.gad7 as fu365_gad7,
        fu365.er_visits as fu365_er_visits,
        pathways.days_observed,
        pathways.readmit_30d,
        pathways.readmit_90d,
        pathways.readmit_180d,
        pathways.days_to_readmission,
        pathways.stepdown_iop_14d,
        pathways.days_to_stepdown,
        pathways.stepdown_14d,
        pathways.stepdown_30d,
        pathways.followup_care_7d,
        pathways.followup_care_30d,
        pathways.days_to_followup_care,
        pathways.further_care_30d
    from episodes
    left join followup_best as fu30
        on fu30.episode_row = episodes.episode_row and fu30.window_days = 30
    left join followup_best as fu90
        on fu90.episode_row = episodes.episode_row and fu90.window_days = 90
    left join followup_best as fu180
        on fu180.episode_row = episodes.episode_row and fu180.window_days = 180
    left join followup_best as fu365
        on fu365.episode_row = episodes.episode_row and fu365.window_days = 365
    left join pathways on pathways.episode_row = episodes.episode_row
)

select * from final
