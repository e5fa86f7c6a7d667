-- name: most_active
-- description: The N most active symbols of the K sessions before a session, by summed volume.
-- param session: the session scanned for, e.g. 2024-07-08; only the sessions before it count
-- param top: how many symbols to return (default: 20)
-- param sessions: how many sessions before `session` to sum over (default: 5)
--
-- A pre-session scanner (pipeline/scanner.py): the volume of a symbol on a session is its
-- 1d bar's volume, or, where it has no 1d bar that session, the sum of its regular-hours
-- 1m bars. Ranked by total volume, highest first; ties go to the symbol that sorts first.
-- Under the scanner `bars` holds only bars from before the session date.
WITH days AS (
    SELECT session, open, close
    FROM calendar_sessions
    WHERE session < $session::DATE
    ORDER BY session DESC
    LIMIT $sessions::INTEGER
),
daily AS (
    SELECT b.symbol, d.session, b.volume
    FROM bars AS b
    JOIN days AS d ON (b.ts AT TIME ZONE 'UTC')::DATE = d.session
    WHERE b.interval = '1d'
),
minute AS (
    SELECT b.symbol, d.session, sum(b.volume) AS volume
    FROM bars AS b
    JOIN days AS d ON b.ts >= d.open AND b.ts < d.close
    WHERE b.interval = '1m'
    GROUP BY b.symbol, d.session
),
per_session AS (
    SELECT symbol, session, volume FROM daily
    UNION ALL
    SELECT m.symbol, m.session, m.volume
    FROM minute AS m
    ANTI JOIN daily AS d ON m.symbol = d.symbol AND m.session = d.session
)
SELECT symbol, sum(volume) AS volume, count(*)::INTEGER AS sessions
FROM per_session
GROUP BY symbol
ORDER BY volume DESC, symbol
LIMIT $top::INTEGER
