"""Common English words: a name made only of these ("The Best", "Young Money") matches too many captions."""

COMMON_WORDS = frozenset(
    """
    a about above after again against all am an and any are as at be because been before being below between both
    but by can could did do does doing down during each few for from further had has have having he her here hers
    herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what when where which
    while who whom why will with would you your yours yourself yourselves
    new old young little big great best good bad high low long short man woman men women boy girl baby child
    people person family friend love life world day night time year home house city town street road river lake
    sea ocean mountain hill park garden tree flower sun moon star sky light dark black white red blue green yellow
    brown gray grey gold silver pink orange purple king queen prince princess lord lady sir miss mister mrs mr dr
    art music song dance film movie show game team club band party school college university church
    photo picture image view sale free price shop store market top first last next one two three four five six
    seven eight nine ten hundred thousand north south east west summer winter spring fall autumn morning evening
    money power rock stone wood water fire air earth happy sweet golden royal grand saint holy
    """.split()  # noqa: SIM905 (a word list reads best as text)
)
