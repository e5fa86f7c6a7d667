-- name: gaps
-- description: Runs of consecutive missing bar slots per symbol, interval and session, against the exchange calendar.
-- param interval: bar interval, e.g. 1m
-- param symbol: one symbol, or NULL for all (default: NULL)
--
-- Slots and the sessions that count are those of quality_by_session.sql. A run is a
-- stretch of missing slots that follow each other in slot order within one session (a
-- lunch break does not split it); "end" is the last missing slot's open plus one interval
-- (one day for 1d, seven days for 1w).
WITH spec AS (
    SELECT
        regexp_extract(trim($interval), '^([0-9]+)([smhdw])$', 2) AS unit,
        TRY_CAST(regexp_extract(trim($interval), '^([0-9]+)([smhdw])$', 1) AS INTEGER) AS n
),
step AS (
    SELECT
        CASE WHEN unit = '' OR n = 0 THEN error(
            'interval ' || $interval || ' is not valid: write a whole number and a unit, e.g. 30s, 1m, 5m, 1h, 1d'
        ) ELSE unit END AS unit,
        to_seconds(n * CASE unit WHEN 's' THEN 1 WHEN 'm' THEN 60 WHEN 'h' THEN 3600 ELSE 0 END) AS width,
        to_seconds(CASE unit WHEN 'd' THEN 86400 WHEN 'w' THEN 604800 ELSE 0 END) AS day_width
    FROM spec
),
chosen AS (
    SELECT symbol, ts
    FROM bars
    WHERE interval = $interval AND ($symbol IS NULL OR symbol = $symbol)
),
span AS (
    -- Intraday bars belong to sessions by the clock (a 20:00 ET post-market bar is on the
    -- next UTC date but in that day's session); daily and weekly bars carry their date.
    SELECT
        f.symbol,
        CASE WHEN step.unit IN ('s', 'm', 'h')
            THEN (SELECT min(cs.session) FROM calendar_sessions AS cs WHERE cs.close > f.first_ts)
            ELSE f.first_ts::DATE END AS first_day,
        CASE WHEN step.unit IN ('s', 'm', 'h')
            THEN (SELECT max(cs.session) FROM calendar_sessions AS cs WHERE cs.open <= f.last_ts)
            ELSE f.last_ts::DATE END AS last_day
    FROM (SELECT symbol, min(ts) AS first_ts, max(ts) AS last_ts FROM chosen GROUP BY symbol) AS f,
        step
),
segments AS (
    SELECT session, open AS seg_start, coalesce(break_start, close) AS seg_end
    FROM calendar_sessions
    UNION ALL
    SELECT session, break_end, close
    FROM calendar_sessions
    WHERE break_end IS NOT NULL
),
slots AS (
    SELECT seg.session, unnest(range(seg.seg_start, seg.seg_end, step.width)) AS ts
    FROM segments AS seg, step
    WHERE step.unit IN ('s', 'm', 'h')
    UNION ALL
    SELECT cs.session, cs.session::TIMESTAMPTZ AS ts
    FROM calendar_sessions AS cs, step
    WHERE step.unit = 'd'
    UNION ALL
    SELECT DISTINCT date_trunc('week', cs.session)::DATE, date_trunc('week', cs.session)::DATE::TIMESTAMPTZ
    FROM calendar_sessions AS cs, step
    WHERE step.unit = 'w'
),
hits AS (
    SELECT DISTINCT symbol, ts FROM chosen
),
marked AS (
    SELECT
        span.symbol,
        slots.session,
        slots.ts,
        hits.ts IS NULL AS missing,
        row_number() OVER (PARTITION BY span.symbol, slots.session ORDER BY slots.ts) AS slot_no
    FROM span
    JOIN slots ON slots.session BETWEEN span.first_day AND span.last_day
    LEFT JOIN hits ON hits.symbol = span.symbol AND hits.ts = slots.ts
),
runs AS (
    -- Gaps and islands: slot_no minus the rank among missing slots is constant along a run.
    SELECT
        symbol,
        session,
        ts,
        slot_no - row_number() OVER (PARTITION BY symbol, session ORDER BY ts) AS run
    FROM marked
    WHERE missing
)
SELECT
    runs.symbol,
    $interval AS interval,
    runs.session,
    min(runs.ts) AS start,
    max(runs.ts) + (step.width + step.day_width) AS "end",
    count(*)::UINTEGER AS missing
FROM runs, step
GROUP BY runs.symbol, runs.session, runs.run, step.width, step.day_width
ORDER BY runs.symbol, start
