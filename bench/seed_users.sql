-- bench/seed_users.sql: the W14 accounts, bulk-inserted by bench/run.
--
--   psql -v n=1000000 -v hash='$2b$04$...' -f bench/seed_users.sql DB
--
-- inserts n accounts in one statement, then runs VACUUM (ANALYZE) users.
--
-- Deterministic: every choice is a hash of the row number i
-- (hashint8extended, stable across PostgreSQL versions), so two seedings
-- hold the same addresses and usernames and a prefix matches the same rows
-- every time (ids and times follow the clock of the seeding).
-- What the rows look like:
--   * email: a first name and a last name drawn with a skew (the lists are
--     in rough order of frequency: the first names are common, the last
--     ones rare), in one of five shapes (first.last, first, flast,
--     last.first, first_last), then i (which makes every address distinct:
--     no name holds a digit), at one of ten example domains, also skewed;
--   * username: 70% have one, mixed case (FirstLast and i mod 10000), so
--     the search's lower(username) index has work too; 30% none;
--   * ids: UUIDv7 built from created_at (spread over three years in the
--     order of i) and hashed bits, so the primary key's order is the
--     creation order, as for accounts Warden creates;
--   * password_hash: one real bcrypt hash (:'hash', copied from an account
--     Warden registered), the same for every row;
--   * 80% verified, 8% with a second factor, 0.5% disabled, role USER.
\set ON_ERROR_STOP on
BEGIN;
INSERT INTO users (id, email, username, password_hash, role, created_at, last_login_at,
                   email_verified_at, mfa_enabled_at, disabled_at, disabled_reason)
SELECT
  (lpad(to_hex((extract(epoch FROM r.created_at) * 1000)::bigint), 12, '0')
     || '7' || substr(r.bits, 1, 3) || '8' || substr(r.bits, 4, 15))::uuid,
  CASE r.shape
    WHEN 0 THEN r.f || '.' || r.l
    WHEN 1 THEN r.f
    WHEN 2 THEN left(r.f, 1) || r.l
    WHEN 3 THEN r.l || '.' || r.f
    ELSE r.f || '_' || r.l
  END || r.i || '@' || r.d,
  CASE WHEN r.u4 < 0.7 THEN initcap(r.f) || initcap(r.l) || (r.i % 10000) END,
  :'hash',
  'USER',
  r.created_at,
  CASE WHEN r.u4 < 0.75 THEN r.created_at + (now() - r.created_at) * r.u5 END,
  CASE WHEN r.u5 < 0.8 THEN r.created_at + interval '10 minutes' END,
  CASE WHEN r.u6 < 0.08 THEN r.created_at + interval '1 day' END,
  CASE WHEN r.u6 > 0.995 THEN now() - interval '1 day' END,
  CASE WHEN r.u6 > 0.995 THEN 'bench seed' END
FROM (
  SELECT s.i,
    (c.first)[1 + floor(array_length(c.first, 1) * s.u1 * s.u1)::int] AS f,
    (c.last)[1 + floor(array_length(c.last, 1) * s.u2 * s.u2)::int] AS l,
    (c.domain)[1 + floor(array_length(c.domain, 1) * s.u3 * s.u3 * s.u3)::int] AS d,
    floor(s.u7 * 5)::int AS shape,
    s.u4, s.u5, s.u6,
    now() - interval '3 years' + interval '3 years' * (s.i::float8 / :n) AS created_at,
    md5(s.i::text) AS bits
  FROM (
    SELECT i,
      (hashint8extended(i, 1) & 9007199254740991)::float8 / 9007199254740992 AS u1,
      (hashint8extended(i, 2) & 9007199254740991)::float8 / 9007199254740992 AS u2,
      (hashint8extended(i, 3) & 9007199254740991)::float8 / 9007199254740992 AS u3,
      (hashint8extended(i, 4) & 9007199254740991)::float8 / 9007199254740992 AS u4,
      (hashint8extended(i, 5) & 9007199254740991)::float8 / 9007199254740992 AS u5,
      (hashint8extended(i, 6) & 9007199254740991)::float8 / 9007199254740992 AS u6,
      (hashint8extended(i, 7) & 9007199254740991)::float8 / 9007199254740992 AS u7
    FROM generate_series(1, :n) AS i
  ) s,
  (SELECT
    ARRAY[
    'james', 'mary', 'john', 'patricia', 'robert', 'jennifer', 'michael', 'linda', 'william', 'elizabeth', 'david', 'barbara',
    'richard', 'susan', 'joseph', 'jessica', 'thomas', 'sarah', 'charles', 'karen', 'christopher', 'lisa', 'daniel', 'nancy',
    'matthew', 'betty', 'anthony', 'margaret', 'mark', 'sandra', 'donald', 'ashley', 'steven', 'kimberly', 'paul', 'emily',
    'andrew', 'donna', 'joshua', 'michelle', 'kenneth', 'carol', 'kevin', 'amanda', 'brian', 'dorothy', 'george', 'melissa',
    'timothy', 'deborah', 'ronald', 'stephanie', 'edward', 'rebecca', 'jason', 'sharon', 'jeffrey', 'laura', 'ryan', 'cynthia',
    'jacob', 'kathleen', 'gary', 'amy', 'nicholas', 'angela', 'eric', 'shirley', 'jonathan', 'anna', 'stephen', 'brenda',
    'larry', 'pamela', 'justin', 'emma', 'scott', 'nicole', 'brandon', 'helen', 'benjamin', 'samantha', 'samuel', 'katherine',
    'gregory', 'christine', 'alexander', 'debra', 'frank', 'rachel', 'patrick', 'carolyn', 'raymond', 'janet', 'jack', 'catherine',
    'dennis', 'maria', 'jerry', 'heather', 'tyler', 'diane', 'aaron', 'ruth', 'jose', 'julie', 'adam', 'olivia',
    'nathan', 'joyce', 'henry', 'virginia', 'douglas', 'victoria', 'zachary', 'kelly', 'peter', 'lauren', 'kyle', 'christina',
    'ethan', 'joan', 'walter', 'evelyn', 'noah', 'judith', 'jeremy', 'megan', 'christian', 'andrea', 'keith', 'cheryl',
    'roger', 'hannah', 'terry', 'jacqueline', 'gerald', 'martha', 'harold', 'gloria', 'sean', 'teresa', 'austin', 'ann',
    'carl', 'sara', 'arthur', 'madison', 'lawrence', 'frances', 'dylan', 'kathryn', 'jesse', 'janice', 'jordan', 'jean',
    'bryan', 'abigail', 'billy', 'alice', 'joe', 'judy', 'bruce', 'sophia', 'gabriel', 'grace', 'logan', 'denise',
    'albert', 'amber', 'willie', 'doris', 'alan', 'marilyn', 'juan', 'danielle', 'wayne', 'beverly', 'elijah', 'isabella',
    'randy', 'theresa', 'roy', 'diana', 'vincent', 'natalie', 'ralph', 'brittany', 'eugene', 'charlotte', 'russell', 'marie',
    'bobby', 'kayla', 'mason', 'alexis', 'philip', 'lori', 'louis', 'ingrid', 'bjorn', 'yusuf', 'ngozi', 'haruto',
    'mei', 'aarav', 'priya', 'mateo', 'lucia', 'kwame', 'amara', 'dmitri', 'svetlana', 'tomasz', 'agnieszka', 'oisin',
    'siobhan'] AS first,
    ARRAY[
    'smith', 'johnson', 'williams', 'brown', 'jones', 'garcia', 'miller', 'davis', 'rodriguez', 'martinez', 'hernandez', 'lopez',
    'gonzalez', 'wilson', 'anderson', 'thomas', 'taylor', 'moore', 'jackson', 'martin', 'lee', 'perez', 'thompson', 'white',
    'harris', 'sanchez', 'clark', 'ramirez', 'lewis', 'robinson', 'walker', 'young', 'allen', 'king', 'wright', 'scott',
    'torres', 'nguyen', 'hill', 'flores', 'green', 'adams', 'nelson', 'baker', 'hall', 'rivera', 'campbell', 'mitchell',
    'carter', 'roberts', 'gomez', 'phillips', 'evans', 'turner', 'diaz', 'parker', 'cruz', 'edwards', 'collins', 'reyes',
    'stewart', 'morris', 'morales', 'murphy', 'cook', 'rogers', 'gutierrez', 'ortiz', 'morgan', 'cooper', 'peterson', 'bailey',
    'reed', 'kelly', 'howard', 'ramos', 'kim', 'cox', 'ward', 'richardson', 'watson', 'brooks', 'chavez', 'wood',
    'james', 'bennett', 'gray', 'mendoza', 'ruiz', 'hughes', 'price', 'alvarez', 'castillo', 'sanders', 'patel', 'myers',
    'long', 'ross', 'foster', 'jimenez', 'powell', 'jenkins', 'perry', 'russell', 'sullivan', 'bell', 'coleman', 'butler',
    'henderson', 'barnes', 'gonzales', 'fisher', 'vasquez', 'simmons', 'romero', 'jordan', 'patterson', 'alexander', 'hamilton', 'graham',
    'reynolds', 'griffin', 'wallace', 'moreno', 'west', 'cole', 'hayes', 'bryant', 'herrera', 'gibson', 'ellis', 'tran',
    'medina', 'aguilar', 'stevens', 'murray', 'ford', 'castro', 'marshall', 'owens', 'harrison', 'fernandez', 'mcdonald', 'woods',
    'washington', 'kennedy', 'wells', 'vargas', 'henry', 'chen', 'freeman', 'webb', 'tucker', 'guzman', 'burns', 'crawford',
    'olson', 'simpson', 'porter', 'hunter', 'gordon', 'mendez', 'silva', 'shaw', 'snyder', 'mason', 'dixon', 'munoz',
    'hunt', 'hicks', 'holmes', 'palmer', 'wagner', 'black', 'robertson', 'boyd', 'rose', 'stone', 'salazar', 'fox',
    'warren', 'mills', 'meyer', 'rice', 'schmidt', 'garza', 'daniels', 'ferguson', 'nichols', 'stephens', 'soto', 'weaver',
    'ryan', 'gardner', 'payne', 'grant', 'dunn', 'kowalski', 'nakamura', 'okafor', 'lindqvist', 'abernathy', 'quigley'] AS last,
    ARRAY[
    'mail.example.com', 'example.org', 'example.net', 'inbox.example.com', 'post.example.org',
    'example.com', 'corp.example.net', 'uni.example.edu', 'acme.example.com', 'studio.example.io'] AS domain) c
) r;
COMMIT;
-- VACUUM as well as ANALYZE: a table of a million accounts has long been
-- vacuumed where it is real, and autovacuum must not start on the fresh
-- one while the searches are being timed.
VACUUM (ANALYZE) users;
