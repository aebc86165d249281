"""The embedded default corpus: a small, generated, deterministic data set for all 12 tasks.

The project must run end to end on a machine with no data at hand, so this module writes its own
corpus in exactly the layout and schema of the real benchmark folder (``<task>/<split>.jsonl`` plus
``tasks.json``). Nothing here is copied from the real data sets: every sentence is built from
templates and slot fillers written for this module.

The generators are meant to be *learnable but not look-up-able*: labels follow from composition
(intensifiers, negations that flip polarity, contrast clauses where the ``but`` clause wins, aspect
dependent polarity, irony as positive words about bad situations, stance as support or rejection of
something that is for or against the target), with distractor clauses and shared vocabulary so that
no single keyword solves a task. Label distributions are skewed roughly like the real data.

Determinism: every split is drawn from ``random.Random(seed ^ stable_hash(task/split))``; which
split a text may go to is decided by a stable hash of the text, so splits never share a text and the
same seed gives byte-identical files. Pure standard library, the whole corpus takes well under 2 s.

``python -m memmcl_merge.corpus OUT_DIR [SEED]`` writes the corpus to OUT_DIR.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import string
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from .tasks import TASKS, TaskSpec, get_task

CORPUS_VERSION = "v1"  # bump when the generator changes: the cache folder name carries it
SPLITS = ("train", "dev", "test", "test_500")
DEFAULT_SIZES: dict[str, int] = {"train": 512, "dev": 128, "test": 256}
TEST_500 = 500
CACHE_ENV = "MEMMCL_CACHE"
MIN_WORDS, MAX_WORDS = 6, 40
# Which split a text belongs to: stable hash of the text modulo 20 -> 70 % / 10 % / 20 %.
_BUCKETS = {"train": range(14), "dev": range(14, 16), "test": range(16, 20)}

Unit = list  # one generated sentence: a list of docs (without id) sharing one text


# -- small helpers -------------------------------------------------------------------------------
def stable_hash(s: str) -> int:
    """A 64-bit hash that is the same in every process (unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(s.encode("utf-8"), digest_size=8).digest(), "big")


def _c(rng: random.Random, seq: Sequence):
    return seq[rng.randrange(len(seq))]


def _w(rng: random.Random, pairs: Sequence[tuple]):
    """Pick a key from ``[(key, weight), ...]``."""
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for key, w in pairs:
        x -= w
        if x < 0:
            return key
    return pairs[-1][0]


_FMT = string.Formatter()


def _fill(rng: random.Random, template: str, slots: Mapping) -> str:
    """Fill ``{name}`` slots left to right; a slot is a string, a sequence (one is drawn) or a
    callable ``f(rng)``. Drawn values may contain slots themselves."""
    out = []
    for lit, name, _, _ in _FMT.parse(template):
        out.append(lit)
        if name is None:
            continue
        v = slots[name]
        if callable(v):
            v = v(rng)
        elif not isinstance(v, str):
            v = _c(rng, v)
        if "{" in v:
            v = _fill(rng, v, slots)
        out.append(v)
    return " ".join("".join(out).split())


def _an(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _fix_articles(text: str) -> str:
    """'a idiot' -> 'an idiot', 'an clown' -> 'a clown'."""
    toks = text.split()
    for i in range(len(toks) - 1):
        if toks[i].lower() in ("a", "an") and toks[i + 1][:1].isalpha():
            art = _an(toks[i + 1])
            toks[i] = _cap(art) if toks[i][0].isupper() else art
    return " ".join(toks)


def _maybe(rng: random.Random, p: float, seq: Sequence[str]) -> str:
    return _c(rng, seq) if rng.random() < p else ""


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# ================================================================================================
# SST-2 / SST-5: movie reviews (lower-cased, PTB-like tokenisation for sst2; capitalised for sst5)
# ================================================================================================
_M_SUBJ = ("the film", "this movie", "the picture", "the story", "the script", "the screenplay",
           "the cast", "the acting", "the direction", "the dialogue", "the ending", "the plot",
           "the soundtrack", "the cinematography", "the pacing", "the lead performance", "the sequel",
           "the remake", "the third act", "the humor", "the whole thing", "it", "the editing",
           "the premise", "the final hour", "the central romance", "the villain", "the score")
_M_FILM_SUBJ = ("the film", "this movie", "the picture", "it", "the sequel", "the remake", "the whole thing")
_M_GENRE = ("comedy", "thriller", "drama", "documentary", "romance", "horror film", "melodrama",
            "debut", "character study", "satire", "biopic", "musical", "heist movie",
            "coming-of-age story", "war film", "family film", "crime saga", "animated feature",
            "mystery", "road movie", "period piece", "western", "sci-fi adventure", "love story")
_M_ADJ = {
    (1, 2): ("brilliant", "masterful", "stunning", "extraordinary", "superb", "magnificent",
             "unforgettable", "exhilarating", "wonderful", "dazzling", "exquisite", "breathtaking",
             "remarkable", "outstanding", "glorious", "gripping"),
    (1, 1): ("enjoyable", "pleasant", "likable", "solid", "charming", "engaging", "watchable", "sweet",
             "amusing", "touching", "clever", "funny", "moving", "warm", "good", "nice", "entertaining",
             "smart", "appealing", "lively", "heartfelt", "fun", "decent"),
    (-1, 2): ("atrocious", "unbearable", "dreadful", "abysmal", "excruciating", "disastrous", "awful",
              "painful", "insufferable", "terrible", "horrendous", "unwatchable", "wretched", "pathetic",
              "appalling", "god-awful"),
    (-1, 1): ("dull", "bland", "forgettable", "flat", "tedious", "clumsy", "predictable", "uneven",
              "sloppy", "thin", "tired", "messy", "shallow", "boring", "silly", "slow", "weak",
              "lifeless", "stale", "hollow", "contrived", "pointless", "bad"),
}
_M_INTENS = ("very", "really", "truly", "extremely", "utterly", "absolutely", "incredibly", "thoroughly",
             "remarkably", "wildly", "deeply", "so")
_M_DOWN = ("somewhat", "fairly", "rather", "a bit", "mostly", "pretty", "slightly", "kind of")
_M_NEGATORS = ("not", "never", "hardly", "far from", "not exactly", "by no means", "anything but",
               "n't")
_M_PHRASE = {
    (1, 2): ("one of the best films of the year", "a must-see", "an instant classic", "a genuine triumph",
             "a masterpiece", "pure cinematic joy", "the best {genre} in years", "a stunning achievement",
             "a knockout", "an absolute delight"),
    (1, 1): ("worth a look", "a nice surprise", "a pleasant diversion", "easy to like",
             "worth the price of admission", "a modest pleasure", "a good time at the movies",
             "a respectable effort", "mostly a treat", "better than expected"),
    (-1, 2): ("one of the worst films of the year", "a complete waste of time", "an utter disaster",
              "a total mess", "an embarrassment for everyone involved", "the worst {genre} in years",
              "a cinematic train wreck", "an endurance test", "a catastrophe"),
    (-1, 1): ("a missed opportunity", "a bit of a letdown", "a disappointment", "hard to care about",
              "a forgettable trifle", "less than the sum of its parts", "a chore to sit through",
              "a minor misfire", "worse than expected", "a familiar retread"),
}
_M_VERB = {
    (1, 2): ("soars", "will blow you away", "never lets go of you", "left me breathless",
             "is a joy from start to finish", "had me cheering"),
    (1, 1): ("works", "holds your attention", "has real charm", "earns its laughs", "gets the job done",
             "keeps you smiling", "grows on you"),
    (-1, 2): ("is an insult to the audience", "made me want to walk out", "collapses completely",
              "is a pain to sit through", "never works for a second"),
    (-1, 1): ("drags", "falls flat", "runs out of steam", "goes nowhere", "feels too long",
              "misses the mark", "loses its way"),
}
_M_NAMES = ("ana reyes", "tom becker", "lena holm", "victor okafor", "mara stone", "jules petit",
            "sam whitaker", "nina sato", "oscar lind", "ruth calder", "ivan marsh", "claire dunn")
_M_FACTS = ("the film runs {num} minutes", "it is based on a {source}", "the film follows a {job} in {place}",
            "it is directed by {name}", "the story is set in {place} during the {decade}",
            "{name} plays a {job} who returns to {place}", "it is the second feature from {name}",
            "the film is in {lang} with subtitles", "most of it takes place in a single {room}",
            "the movie opens in theaters this friday", "{name} wrote the script with {name}",
            "the story covers three days in {place}", "it was shot on location in {place}")
_M_FACT_SLOTS = {
    "num": ("88", "94", "101", "112", "127", "139", "146"),
    "source": ("novel", "true story", "stage play", "comic book", "short story", "magazine article"),
    "job": ("teacher", "nurse", "detective", "farmer", "boxer", "lawyer", "chef", "pilot", "musician"),
    "place": ("ohio", "paris", "a small town", "brooklyn", "the desert", "a fishing village", "tokyo",
              "a mining town", "london", "rural texas"),
    "decade": ("1950s", "1970s", "1980s", "1990s", "1920s"),
    "name": _M_NAMES,
    "lang": ("french", "korean", "spanish", "german", "italian"),
    "room": ("apartment", "house", "courtroom", "car", "hotel room"),
}
_M_NEUTRAL_ADJ = ("conventional", "familiar", "ordinary", "straightforward", "modest", "old-fashioned",
                  "low-key", "talky", "earnest", "workmanlike")
_M_NEUTRAL = ("{subj} is neither {pm} nor {nm}", "{subj} has its moments and its problems",
              "{subj} is a mixed bag", "{fsubj} is a perfectly ordinary {genre}",
              "{subj} is fine for what it is , no more and no less", "{subj} is {nadj}",
              "{fsubj} is exactly what you would expect from {an_genre}", "{subj} is {nadj} and {nadj}",
              "{subj} will please its fans and few others", "{fsubj} is a {nadj} {genre}",
              "{fact}", "{fact} , and {fact}", "{fact} ; {subj} is {nadj}")
_M_CONTEXT = ("with {name} in the lead", "at {num} minutes", "adapted from a {source}", "shot in {place}",
              "set in the {decade}", "as a story about a {job} in {place}", "coming from {name}",
              "told over one long weekend in {place}", "after years of waiting for {name} to return")
_M_PREFIX = ("in the end ,", "all told ,", "frankly ,", "as expected ,", "in short ,", "by the way ,",
             "for better or worse ,", "on the whole ,")


def _movie_adj(rng: random.Random, s: int, m: int) -> str:
    if m == 2:
        if rng.random() < 0.5:
            return (_maybe(rng, 0.3, ("absolutely", "truly", "simply")) + " " + _c(rng, _M_ADJ[(s, 2)])).strip()
        return f"{_c(rng, _M_INTENS)} {_c(rng, _M_ADJ[(s, 1)])}"
    if rng.random() < 0.3:
        return f"{_c(rng, _M_DOWN)} {_c(rng, _M_ADJ[(s, 1)])}"
    return _c(rng, _M_ADJ[(s, 1)])


def _movie_clause(rng: random.Random, s: int, m: int, subj: str) -> str:
    """A clause about ``subj`` with polarity ``s`` (+1/-1) and strength ``m`` (1 mild, 2 strong)."""
    if m == 1 and rng.random() < 0.24:  # negating either-strength opposite: mild, flipped polarity
        opp = _c(rng, _M_ADJ[(-s, 1)] + _M_ADJ[(-s, 2)])
        neg = _c(rng, _M_NEGATORS)
        if neg == "n't":
            return f"{subj} is n't {opp}" if subj != "it" else f"it 's not {opp}"
        return f"{subj} is {neg} {opp}"
    r = rng.random()
    if r < 0.45:
        return f"{subj} is {_movie_adj(rng, s, m)}"
    if r < 0.62 and subj in _M_FILM_SUBJ:
        adj = _movie_adj(rng, s, m)
        return f"{subj} is {_an(adj)} {adj} {_c(rng, _M_GENRE)}"
    if r < 0.84:
        return _fill(rng, f"{subj} is {_c(rng, _M_PHRASE[(s, m)])}", {"genre": _M_GENRE})
    return f"{subj} {_c(rng, _M_VERB[(s, m)])}"


def _two_subjects(rng: random.Random) -> tuple[str, str]:
    a = _c(rng, _M_SUBJ)
    b = _c(rng, _M_SUBJ)
    while b == a:
        b = _c(rng, _M_SUBJ)
    return a, b


def _movie_fact(rng: random.Random) -> str:
    return _fill(rng, _c(rng, _M_FACTS), _M_FACT_SLOTS)


def _movie_sentence(rng: random.Random, s: int, m: int) -> str:
    """The ``but``/``although``/``even though`` main clause carries the label."""
    a, b = _two_subjects(rng)
    r = rng.random()
    if r < 0.46:
        core = _movie_clause(rng, s, m, a)
    elif r < 0.61:
        core = f"{_movie_clause(rng, -s, _c(rng, (1, 2)), b)} , but {_movie_clause(rng, s, m, a)}"
    elif r < 0.68:
        core = f"although {_movie_clause(rng, -s, _c(rng, (1, 2)), b)} , {_movie_clause(rng, s, m, a)}"
    elif r < 0.74:
        core = f"{_movie_clause(rng, s, m, a)} , even though {_movie_clause(rng, -s, 1, b)}"
    elif r < 0.88:
        core = f"{_movie_clause(rng, s, m, a)} , and {_movie_clause(rng, s, 1, b)}"
    else:
        core = f"{_movie_fact(rng)} , and {_movie_clause(rng, s, m, a)}"
    if 0.46 <= r < 0.68 and rng.random() < 0.25:  # a third clause backing the main one
        c = _c(rng, tuple(x for x in _M_SUBJ if x not in (a, b)))
        core = f"{core} , and {_movie_clause(rng, s, 1, c)}"
    if rng.random() < 0.25:
        core = f"{_fill(rng, _c(rng, _M_CONTEXT), _M_FACT_SLOTS)} , {core}"
    if rng.random() < 0.15:
        core = f"{_c(rng, _M_PREFIX)} {core}"
    return core + " ."


def _movie_neutral(rng: random.Random) -> str:
    g = _c(rng, _M_GENRE)
    slots = dict(_M_FACT_SLOTS, subj=_M_SUBJ, fsubj=_M_FILM_SUBJ, genre=_M_GENRE, nadj=_M_NEUTRAL_ADJ, pm=_M_ADJ[(1, 1)],
                 nm=_M_ADJ[(-1, 1)], an_genre=f"{_an(g)} {g}", fact=lambda r: _movie_fact(r))
    core = _fill(rng, _c(rng, _M_NEUTRAL), slots)
    if rng.random() < 0.1:
        core = f"{_c(rng, _M_PREFIX)} {core}"
    return core + " ."


def _gen_sst2(rng: random.Random) -> Unit:
    label = _w(rng, (("positive", 0.53), ("negative", 0.47)))
    s = 1 if label == "positive" else -1
    text = _movie_sentence(rng, s, _w(rng, ((1, 0.62), (2, 0.38))))
    return [{"text": text, "label": label}]


_SST5 = (("very negative", 0.13), ("negative", 0.26), ("neutral", 0.19), ("positive", 0.27),
         ("very positive", 0.15))
_SST5_SM = {"very negative": (-1, 2), "negative": (-1, 1), "positive": (1, 1), "very positive": (1, 2)}


def _gen_sst5(rng: random.Random) -> Unit:
    label = _w(rng, _SST5)
    text = _movie_neutral(rng) if label == "neutral" else _movie_sentence(rng, *_SST5_SM[label])
    return [{"text": _cap(text), "label": label}]


# ================================================================================================
# Tweets: shared fillers
# ================================================================================================
_T_TOPIC = ("the game tonight", "the new album", "the concert", "the season finale", "my exam",
            "the new update", "black friday", "the parade", "the match", "the new episode", "the premiere",
            "the trip to {city}", "the festival", "work today", "the debate", "the new phone", "the weekend",
            "the playoffs", "the launch event", "the movie", "the show", "my birthday", "the trailer",
            "the new coffee place", "the final", "the tour", "spring break", "the marathon", "the lecture",
            "the {team} game", "the book signing", "the road trip", "the wedding", "the meeting")
_T_CITY = ("Chicago", "Boston", "Denver", "Lisbon", "Dublin", "Austin", "Seattle", "Madrid", "Leeds")
_T_TEAM = ("Hawks", "Rovers", "Tigers", "Giants", "United", "Falcons", "Rangers", "Comets")
_T_WHO = ("@user", "my boss", "my brother", "my mom", "the coach", "my roommate", "the landlord",
          "the airline", "the bank", "my neighbor", "the school", "the council", "Jake", "Emma", "Priya")
_T_DAY = ("tomorrow", "tonight", "on Friday", "on Saturday", "this weekend", "on Monday", "next week",
          "on Sunday", "this morning", "today", "on Thursday")
_T_TIME = ("8pm", "7:30", "noon", "9am", "6pm", "10pm")
_T_THING = ("game", "show", "day", "concert", "weekend", "episode", "birthday", "trip", "meal", "match")
_T_FILLER = ("anyway , back to work", "that is all", "just saying", "more later", "who else is watching",
             "long day ahead", "coffee first", "see you all there", "sent from my phone")
_T_CONTEXT = ("been up since six and it is only tuesday", "just got home from a twelve hour shift",
              "my phone is at 5 percent so this will be quick", "waiting for the train with a cold coffee",
              "first tweet in ages , hi everyone", "sitting in the library pretending to study",
              "on my lunch break", "cannot sleep so here we go", "my cat is sitting on my keyboard",
              "writing this from the back of the bus", "no plans for the rest of the day",
              "still in my pajamas at noon")
_T_SLOTS = {"topic": _T_TOPIC, "city": _T_CITY, "team": _T_TEAM, "who": _T_WHO, "day": _T_DAY,
            "time": _T_TIME, "thing": _T_THING}


def _tweet(rng: random.Random, body: str, tags: Sequence[str] = (), emojis: Sequence[str] = (),
           p_user: float = 0.3, p_tag: float = 0.4, p_emoji: float = 0.25, p_filler: float = 0.15) -> str:
    """Decorate a tweet body: @user, hashtags, emoji, a neutral trailing filler; casing varies."""
    parts = []
    if rng.random() < p_user:
        parts.append("@user")
    r = rng.random()
    if r < 0.15:
        parts.append(_c(rng, _T_CONTEXT) + " .")
    parts.append(body)
    if 0.15 <= r < 0.3:
        parts.append(". " + _c(rng, _T_CONTEXT))
    if rng.random() < p_filler:
        parts.append(". " + _c(rng, _T_FILLER))
    if emojis and rng.random() < p_emoji:
        parts.append(_c(rng, emojis))
    if tags and rng.random() < p_tag:
        first = _c(rng, tags)
        parts.append(first)
        second = _c(rng, tags)
        if rng.random() < 0.3 and second != first:
            parts.append(second)
    text = _fix_articles(" ".join(parts))
    text = text.replace("? .", "?").replace("! .", "!").replace(". .", ".")
    text = text.replace(" . ", ". ").replace(" , ", ", ").replace(" !", "!").replace(" ?", "?")
    if rng.random() < 0.45:
        text = _cap(text)
    return " ".join(text.split())


# -- tweet_sentiment ---------------------------------------------------------------------------
_TS_BODY = {
    "positive": ("so excited for {topic} {day} !", "{topic} was amazing", "loved {topic} , thank you {who} !",
                 "can't wait for {topic} {day}", "best {thing} ever", "{topic} {day} was so much fun",
                 "finally got tickets for {topic} !!", "what a great {thing}", "so happy {topic} is {day}",
                 "{topic} was not bad at all", "{who} absolutely killed it at {topic}",
                 "big thanks to {who} for {topic}", "{topic} never disappoints", "really enjoyed {topic}",
                 "{topic} {day} , could not be happier", "ugh , {topic} was late but honestly it was worth it",
                 "thought {topic} would be bad , it was great", "never thought i would say this but {topic} rocks",
                 "no complaints about {topic} at all"),
    "negative": ("{topic} was a disaster", "so annoyed that {topic} got cancelled", "worst {thing} ever",
                 "ugh , {topic} {day} again", "not happy with {topic}", "can't believe {who} missed {topic}",
                 "{topic} was so boring", "really disappointed by {topic}", "{topic} is not worth it",
                 "hate that {topic} is {day}", "{who} ruined {topic}", "{topic} was not good at all",
                 "sick of {topic} already", "{topic} {day} , what a waste", "never going to {topic} again",
                 "thought {topic} would be great , it was awful", "so much for the best {thing} of the year",
                 "{topic} was supposed to be fun . it was not", "happy for them but {topic} was a mess"),
    "neutral": ("{topic} starts at {time} {day}", "{who} will talk about {topic} {day}",
                "anyone going to {topic} {day} ?", "tickets for {topic} go on sale {day}",
                "not sure if {topic} is {day} or next week", "watching {topic} {day} with {who}",
                "{who} confirmed {topic} will be streamed {day}", "reminder : {topic} {day} at {time}",
                "{who} says {topic} has been moved to {day}", "does anyone know when {topic} ends ?",
                "{topic} {day} , doors open at {time}", "heading to {topic} {day}",
                "{who} posted the schedule for {topic}", "is {topic} {day} or not ?",
                 "the happy hour before {topic} starts at {time}", "{who} reviews the best and worst of {topic}",
                 "not sure what to expect from {topic} {day}", "poll : was {topic} good or bad ?",
                 "live updates from {topic} {day}"),
}
_TS_TAGS = {"positive": ("#blessed", "#happy", "#gameday", "#yay", "#love"),
            "negative": ("#fail", "#annoyed", "#gameday", "#smh", "#ugh"),
            "neutral": ("#news", "#update", "#gameday", "#tbt", "#info")}
_TS_EMO = {"positive": (":)", "😊", "🎉", ":D"), "negative": (":(", "😡", "😒", "-_-"), "neutral": ()}


def _gen_tweet_sentiment(rng: random.Random) -> Unit:
    label = _w(rng, (("negative", 0.22), ("neutral", 0.43), ("positive", 0.35)))
    body = _fill(rng, _c(rng, _TS_BODY[label]), _T_SLOTS)
    return [{"text": _tweet(rng, body, _TS_TAGS[label], _TS_EMO[label]), "label": label}]


# -- tweet_emotion -------------------------------------------------------------------------------
_TE_SITUATION = ("the bus was late again", "my phone broke", "the {team} lost", "my flight got cancelled",
                 "it rained all day", "i finished my exams", "my sister got engaged", "the new season starts",
                 "my dog is sick", "i start a new job on monday", "they changed the schedule again",
                 "i got the results back", "the landlord raised the rent", "my best friend moved away",
                 "we won the game", "the store was out of everything", "my grandma called",
                 "i failed my driving test", "the project is finally done", "summer is over")
_TE_BODY = {
    "anger": ("so {adj} that {sit}", "{sit} . absolutely {adj}", "how dare {who} do this", "i am {adj} , {sit}",
              "sick and tired of this , {sit}", "{who} is so {adj2} , {sit}", "this is unacceptable , {sit}",
              "can not believe {who} would do that , {adj}", "{sit} and nobody cares . {adj}",
              "seriously {who} ? i am {adj}", "not sad , just really {adj} , {sit}",
              "i was so happy until {who} ruined it , {adj}"),
    "joy": ("so {adj} right now , {sit}", "{sit} ! best day ever", "{sit} and i am {adj}",
            "laughing so hard , {who} is hilarious", "love this so much , {sit}", "{adj} because {sit}",
            "what a great day , {sit}", "can't stop smiling , {sit}", "{who} just made my day",
            "pure {noun} , {sit}", "was so sad all week but {sit} and now i am {adj}",
            "forget being angry , {sit} and i am {adj}"),
    "optimism": ("{sit} , but tomorrow is a new day", "never give up , {sit}", "feeling {adj} , things will get better",
                 "{sit} . keep pushing , it will be worth it", "one step at a time , {sit}",
                 "believe in yourself even when {sit}", "{sit} , but i am {adj} about what comes next",
                 "every setback is a setup for a comeback", "stay strong {who} , better days are coming",
                 "i know {sit} , but we will get through this",
                 "sad today , but i am {adj} it will be better soon", "not giving up , {sit}"),
    "sadness": ("so {adj} , {sit}", "{sit} and i can't stop crying", "{sit} . i feel so empty",
                "miss you so much {who}", "{sit} , feeling {adj} tonight", "{adj} because {sit}",
                "why does this always happen to me , {sit}", "{sit} . nothing feels right anymore",
                "i just want to stay in bed , {sit}", "lonely night , {sit}",
                "not feeling happy at all , {sit}", "i don't think things will get better , {sit}"),
}
_TE_ADJ = {"anger": ("furious", "livid", "fuming", "outraged", "angry", "mad", "irritated", "infuriated"),
           "joy": ("happy", "thrilled", "delighted", "overjoyed", "giddy", "cheerful", "ecstatic"),
           "optimism": ("hopeful", "determined", "confident", "optimistic", "motivated"),
           "sadness": ("heartbroken", "devastated", "sad", "miserable", "lonely", "gutted", "depressed",
                       "down")}
_TE_ADJ2 = ("rude", "useless", "selfish", "incompetent", "annoying")
_TE_NOUN = ("joy", "happiness", "bliss", "fun")
_TE_TAGS = {"anger": ("#angry", "#rage", "#fuming", "#annoyed"), "joy": ("#happy", "#lol", "#fun", "#goodtimes"),
            "optimism": ("#motivation", "#hope", "#goals", "#positivity"),
            "sadness": ("#sad", "#depression", "#heartbroken", "#missyou")}
_TE_EMO = {"anger": ("😡", "😤"), "joy": ("😂", "😄", "🎉"), "optimism": ("💪", "🙏", "✨"),
           "sadness": ("😢", "💔", "😞")}
_TE_NEIGHBOUR = {"anger": "sadness", "sadness": "anger", "joy": "optimism", "optimism": "joy"}


def _gen_tweet_emotion(rng: random.Random) -> Unit:
    label = _w(rng, (("anger", 0.38), ("joy", 0.24), ("optimism", 0.12), ("sadness", 0.26)))
    slots = dict(_T_SLOTS, sit=lambda r: _fill(r, _c(r, _TE_SITUATION), _T_SLOTS), adj=_TE_ADJ[label],
                 adj2=_TE_ADJ2, noun=_TE_NOUN)
    body = _fill(rng, _c(rng, _TE_BODY[label]), slots)
    tag_label = _TE_NEIGHBOUR[label] if rng.random() < 0.15 else label  # some hashtag noise
    return [{"text": _tweet(rng, body, _TE_TAGS[tag_label], _TE_EMO[label], p_tag=0.5), "label": label}]


# -- tweet_irony ---------------------------------------------------------------------------------
_TI_BAD_ING = ("waiting two hours for the bus", "being stuck in traffic", "working on a saturday",
               "getting a parking ticket", "doing taxes all weekend", "being sick on my birthday",
               "sitting in the dentist chair", "studying for three exams at once", "losing my keys again",
               "standing in the rain", "cleaning up after the party", "having no wifi all day",
               "getting up at 5am", "paying twelve dollars for coffee", "waiting on hold for an hour",
               "walking to work in the snow", "fixing the printer again")
_TI_BAD_EVENT = ("my flight got delayed again", "the wifi is down", "it is raining on my day off",
                 "my phone died at 2 percent", "the printer jammed again", "i spilled coffee on my laptop",
                 "my car broke down", "the train is cancelled", "i have a cold", "the heating stopped working",
                 "my package got lost", "the elevator is broken again", "my laptop updated during the exam")
_TI_GOOD_ING = ("spending the day at the beach", "watching movies with my family", "getting a surprise gift",
                "having pizza with friends", "sleeping in on sunday", "reading in the park",
                "hiking with my dog", "baking cookies with my niece", "listening to the new album",
                "catching up with old friends")
_TI_GOOD_EVENT = ("my sister got into college", "the sun is finally out", "i got the job", "we won the game",
                  "my package arrived early", "the weekend is here", "my friends threw me a party",
                  "the new season is out")
_TI_IRONIC = ("love {bad_ing}", "great , {bad_event} . just what i needed", "nothing better than {bad_ing}",
              "so glad {bad_event}", "{bad_event} . perfect start to the {period}",
              "thanks {who} for {bad_ing} , really appreciate it", "my favorite thing is {bad_ing}",
              "oh wonderful , {bad_event}", "yay , {bad_event}", "what a lovely day for {bad_ing}",
              "{bad_event} . i am having the best {period} ever", "nothing says fun like {bad_ing}",
              "can't wait to spend all {period} {bad_ing}", "ugh , {good_event} . life is so hard",
              "hate {good_ing} , it is the worst", "so annoyed , {good_event} . tough life",
              "{good_event} . worst {period} ever , clearly")
_TI_GENUINE = ("love {good_ing}", "so glad {good_event}", "thanks {who} for {good_ing} , really appreciate it",
               "nothing better than {good_ing}", "{good_event} . perfect start to the {period}",
               "great , {good_event} . just what i needed", "my favorite thing is {good_ing}",
               "oh wonderful , {good_event}", "yay , {good_event}", "what a lovely day for {good_ing}",
               "{good_event} . i am having the best {period} ever", "can't wait to spend all {period} {good_ing}",
               "hate {bad_ing}", "ugh , {bad_event}",
               "so annoyed , {bad_event}", "{bad_event} . worst {period} ever",
               "not a fan of {bad_ing}", "{bad_event} , going to bed early", "anyone else {bad_ing} ?",
               "{who} says {topic} is {day}", "watching {topic} {day}", "reminder : {topic} {day} at {time}")
_TI_PERIOD = ("week", "day", "morning", "weekend", "month", "year")
_TI_TAGS_IRONIC = ("#not", "#sarcasm", "#irony", "#greatday", "#mondays")
_TI_TAGS_PLAIN = ("#blessed", "#mondays", "#news", "#greatday", "#tired")


def _gen_tweet_irony(rng: random.Random) -> Unit:
    label = _w(rng, (("ironic", 0.5), ("not ironic", 0.5)))
    slots = dict(_T_SLOTS, bad_ing=_TI_BAD_ING, bad_event=_TI_BAD_EVENT, good_ing=_TI_GOOD_ING,
                 good_event=_TI_GOOD_EVENT, period=_TI_PERIOD)
    if label == "ironic":
        body = _fill(rng, _c(rng, _TI_IRONIC), slots)
        text = _tweet(rng, body, _TI_TAGS_IRONIC, ("🙄", "😒", "🙃", "😊"), p_tag=0.4)
    else:
        body = _fill(rng, _c(rng, _TI_GENUINE), slots)
        text = _tweet(rng, body, _TI_TAGS_PLAIN, ("😊", "😩", "❤️"), p_tag=0.3)
    return [{"text": text, "label": label}]


# -- tweet_hate ----------------------------------------------------------------------------------
_TH_GROUP = ("immigrants", "migrants", "refugees", "women", "asylum seekers", "foreigners")
_TH_INSULT = ("idiots", "trash", "useless", "lazy", "a burden", "the worst", "clowns", "liars", "worthless")
_TH_HATE = ("{group} are {insult}", "send all the {group} back", "{group} should not be allowed to {act}",
            "i am so sick of {group} , they are {insult}", "{group} ruin everything", "never trust {group}",
            "no more {group} , close the borders", "{group} are {insult} and everyone knows it",
            "why do we let {group} {act} ? they are {insult}", "{group} only care about themselves , {insult}",
            "get these {group} out of our country", "{group} belong in the kitchen , not in {place}",
           "we do not want {group} here", "{group} should go back where they came from",
           "{group} do not deserve to {act}")
_TH_NOT = ("{group} in our town organised a food drive", "great panel on {group} in tech {day}",
           "hundreds of {group} arrived at the port this morning , volunteers are helping",
           "support for {group} is growing", "saying {group} are {insult} is just wrong",
           "my printer is {insult2}", "these referees are {insult} , what a game",
           "new report on {group} and the job market out {day}", "proud of the {group} who {act} every day",
           "{who} is {insult2} at replying to texts", "the traffic {day} is {insult2}",
           "stop calling {group} {insult} , it is not ok", "listening to a podcast about {group} and {place}",
           "{topic} {day} was {insult2}", "{other} are {insult}", "never trust {other}",
           "{group} should be allowed to {act}", "i am so sick of {other} , they are {insult}",
           "{other} ruin everything", "{other} only care about themselves , {insult}",
           "why do we let {other} {act} ? they are {insult}", "welcome the {group} , they are not {insult}")
_TH_SLOTS = dict(_T_SLOTS, group=_TH_GROUP, other=("politicians", "referees", "landlords", "bankers",
                                                  "these drivers", "the critics", "lawyers", "journalists"), insult=_TH_INSULT, insult2=("trash", "useless", "the worst", "a joke"),
                 act=("vote", "work here", "speak up", "drive", "run for office", "study here"),
                 place=("parliament", "the office", "politics", "sports", "our schools"))


def _gen_tweet_hate(rng: random.Random) -> Unit:
    label = _w(rng, (("hate", 0.42), ("not hate", 0.58)))
    body = _fill(rng, _c(rng, _TH_HATE if label == "hate" else _TH_NOT), _TH_SLOTS)
    tags = ("#sendthemback", "#enoughisenough", "#news") if label == "hate" else ("#news", "#community", "#smh")
    return [{"text": _tweet(rng, body, tags, (), p_user=0.4, p_tag=0.35), "label": label}]


# -- tweet_offensive -----------------------------------------------------------------------------
_TO_INSULT = ("idiot", "clown", "moron", "loser", "jerk", "fool", "joke", "creep", "hypocrite")
_TO_OFF = ("you are such an {insult}", "shut up , {insult}", "what a load of crap", "{who} is a complete {insult}",
           "this {issue} plan is damn garbage", "damn , {bad}", "go to hell {who}", "who cares what this {insult} thinks",
           "stop talking , you {insult}", "only an {insult} would believe that", "{who} is full of crap",
           "nobody asked you , {insult}", "what a pathetic {insult}", "{issue} ? this guy is a {insult}",
           "hell no , {who} is a {insult}")
_TO_NOT = ("i respectfully disagree with {who} on {issue}", "{who} made some good points about {issue}",
           "what time does {topic} start ?", "you are a legend !", "this policy on {issue} is a mistake",
           "i do not agree with you at all about {issue}", "thanks for sharing , {who}",
           "{issue} needs a real debate , not slogans", "great job {who} , well deserved",
           "can you send me the link about {issue} ?", "i think {who} is wrong about {issue}",
           "{bad} , what a day", "this is a terrible idea for {issue}", "congrats on {topic} !",
           "you are such a {nice}", "{who} is a complete {nice}", "stop talking about {issue} , let us vote",
           "only a {nice} would do that for a stranger", "nobody asked , but {who} was right about {issue}",
           "what a pathetic performance by the defense {day}", "who cares about {issue} when {bad}",
           "being called {an_insult} online is not ok", "felt like {an_insult} when i locked myself out",
           "the {insult} at my niece's party was great", "that was not {an_insult} move at all , well played")
_TO_SLOTS = dict(_T_SLOTS, insult=_TO_INSULT, an_insult=tuple(f"a {w}" for w in _TO_INSULT), nice=("legend", "gentleman", "hero", "sweetheart", "genius", "star"), issue=("taxes", "gun control", "the new stadium", "school funding",
                                                     "immigration policy", "the budget", "climate policy",
                                                     "healthcare"),
                 bad=_TI_BAD_EVENT)


def _gen_tweet_offensive(rng: random.Random) -> Unit:
    label = _w(rng, (("offensive", 0.34), ("not offensive", 0.66)))
    body = _fill(rng, _c(rng, _TO_OFF if label == "offensive" else _TO_NOT), _TO_SLOTS)
    return [{"text": _tweet(rng, body, ("#maga", "#politics", "#news", "#smh"), ("😂", "🤡", "🙄"), p_user=0.7),
             "label": label}]


# -- tweet_stance --------------------------------------------------------------------------------
# For each target: things whose support means FAVOR, things whose support means AGAINST, claims,
# and hashtags. "I will never support X" flips, so a keyword alone does not decide the stance.
_STANCE = {
    "Atheism": {
        "favor_np": ("atheism", "secularism", "science over superstition", "a world without religion"),
        "against_np": ("our faith", "the church", "prayer in schools", "the word of god"),
        "favor_claim": ("religion is just an old superstition", "there is no evidence for any god",
                        "morality does not need religion", "keep your god out of my government"),
        "against_claim": ("god is good all the time", "pray every day and trust the lord",
                          "faith in god keeps me going", "jesus is the way"),
        "favor_tag": ("#atheism", "#freethinker"), "against_tag": ("#god", "#faith", "#blessed"),
    },
    "Climate Change is a Real Concern": {
        "favor_np": ("climate action", "renewable energy", "the paris agreement", "cutting carbon emissions"),
        "against_np": ("more coal mining", "more oil drilling", "the climate skeptics", "cheap fossil fuels"),
        "favor_claim": ("the planet is warming and we must act now", "we need to cut emissions before it is too late",
                        "the science on climate change is clear", "our kids deserve a livable planet"),
        "against_claim": ("global warming is a hoax", "climate change is just a scam to raise taxes",
                          "more snow this winter , so much for global warming", "the climate has always changed"),
        "favor_tag": ("#actonclimate", "#climate"), "against_tag": ("#climatehoax", "#tcot"),
    },
    "Feminist Movement": {
        "favor_np": ("feminism", "equal pay for women", "women's rights", "the feminist movement"),
        "against_np": ("traditional gender roles", "the men's rights movement", "the anti-feminist crowd"),
        "favor_claim": ("women deserve equal pay for equal work", "equality is not a privilege",
                        "girls can do anything boys can do"),
        "against_claim": ("feminists just want special treatment", "feminism has gone way too far",
                          "modern feminism is a joke"),
        "favor_tag": ("#feminism", "#equality"), "against_tag": ("#antifeminism", "#meninist"),
    },
    "Hillary Clinton": {
        "favor_np": ("hillary", "hillary clinton", "hillary for president", "the clinton campaign"),
        "against_np": ("the republican candidate", "anyone but hillary", "the gop ticket"),
        "favor_claim": ("she will make a great president", "ready for hillary in 2016",
                        "the most qualified candidate in decades"),
        "against_claim": ("you can not trust hillary", "hillary is a liar", "hillary does not deserve to be president"),
        "favor_tag": ("#hillary2016", "#imwithher"), "against_tag": ("#stophillary", "#tcot"),
    },
    "Legalization of Abortion": {
        "favor_np": ("abortion rights", "a woman's right to choose", "planned parenthood", "legal abortion"),
        "against_np": ("the pro-life movement", "the unborn", "the right to life", "the march for life"),
        "favor_claim": ("my body , my choice", "abortion should be safe and legal", "women should decide for themselves"),
        "against_claim": ("every life is precious", "abortion is murder", "defend the unborn",
                          "life begins at conception"),
        "favor_tag": ("#prochoice", "#reprorights"), "against_tag": ("#prolife", "#alllivesmatter"),
    },
}
_SUPPORT = ("i fully support {np}", "proud to stand for {np}", "so grateful for {np}", "we need {np} now",
            "{np} is the future", "standing with {np} today")
_REJECT = ("i will never support {np}", "i am totally against {np}", "enough with {np}", "say no to {np}",
           "{np} is a disaster", "nobody needs {np}")
_NEUTRAL_MENTION = ("there is a debate on {np} at the library {day}", "reading an article about {np}",
                    "{who} will speak about {np} {day}", "my class is discussing {np} {day}",
                    "interesting documentary about {np} on tv {day}")
_OFFTOPIC = ("great game tonight , what a finish", "coffee time before {topic}", "who is watching {topic} {day} ?",
             "{who} just posted the new schedule", "{topic} {day} , can't wait", "the weather is perfect {day}",
             "new recipe for dinner {day}", "stuck in traffic again on my way to {topic}")


def _gen_tweet_stance(rng: random.Random) -> Unit:
    target = _c(rng, tuple(_STANCE))
    st = _STANCE[target]
    label = _w(rng, (("none", 0.26), ("against", 0.47), ("favor", 0.27)))
    side, other = ("favor", "against") if label == "favor" else ("against", "favor")
    slots = dict(_T_SLOTS)
    tags: Sequence[str] = ()
    if label == "none":
        if rng.random() < 0.45:
            slots["np"] = st["favor_np"] + st["against_np"]
            body = _fill(rng, _c(rng, _NEUTRAL_MENTION), slots)
        else:
            body = _fill(rng, _c(rng, _OFFTOPIC), slots)
        tags = ("#news", "#tbt", "#weekend")
    else:
        r = rng.random()
        if r < 0.35:
            body = _c(rng, st[f"{side}_claim"])
        elif r < 0.65:
            slots["np"] = st[f"{side}_np"]
            body = _fill(rng, _c(rng, _SUPPORT), slots)
        elif r < 0.88:
            slots["np"] = st[f"{other}_np"]
            body = _fill(rng, _c(rng, _REJECT), slots)
        else:
            body = f"\"{_c(rng, st[f'{other}_claim'])}\" ? what nonsense"
        if rng.random() < 0.3:
            body += " . " + _c(rng, st[f"{side}_claim"])
        tags = st[f"{side}_tag"]
    text = _tweet(rng, body, tags, (), p_tag=0.45)
    if rng.random() < 0.6:
        text += " #SemST"
    return [{"text": text, "target": target, "label": label}]


# ================================================================================================
# ABSA: laptop and restaurant reviews (ATSC and ASTE share the sentence builder)
# ================================================================================================
# aspect term -> (opinion class, plural)
_LAP_ASPECTS = (
    ("battery life", "battery", 0), ("battery", "battery", 0), ("charger", "charger", 0),
    ("power cord", "charger", 0), ("power supply", "charger", 0), ("screen", "display", 0),
    ("display", "display", 0), ("resolution", "display", 0), ("webcam", "display", 0),
    ("keyboard", "input", 0), ("keys", "input", 1), ("trackpad", "input", 0), ("touchpad", "input", 0),
    ("processor", "perf", 0), ("performance", "perf", 0), ("boot time", "perf", 0), ("startup", "perf", 0),
    ("graphics card", "perf", 0), ("memory", "perf", 0), ("hard drive", "perf", 0), ("wifi", "perf", 0),
    ("software", "perf", 0), ("operating system", "perf", 0), ("Windows 8", "perf", 0), ("OS X", "perf", 0),
    ("apps", "perf", 1), ("programs", "perf", 1), ("bluetooth", "perf", 0), ("design", "body", 0),
    ("build quality", "body", 0), ("case", "body", 0), ("hinge", "body", 0), ("lid", "body", 0),
    ("speakers", "sound", 1), ("sound", "sound", 0), ("audio", "sound", 0), ("fan", "fan", 0),
    ("cooling fan", "fan", 0), ("customer service", "service", 0), ("tech support", "service", 0),
    ("warranty", "service", 0), ("support team", "service", 0), ("price", "price", 0),
    ("price tag", "price", 0), ("cost", "price", 0), ("ports", "io", 1), ("USB ports", "io", 1),
    ("HDMI port", "io", 0), ("DVD drive", "io", 0),
)
_LAP_OPS = {
    "battery": (("long", "excellent", "amazing", "reliable", "impressive", "incredible"),
                ("short", "terrible", "weak", "pathetic", "poor", "disappointing")),
    "charger": (("compact", "reliable", "light", "sturdy", "handy"), ("bulky", "flimsy", "faulty", "heavy", "short")),
    "display": (("bright", "crisp", "sharp", "vivid", "clear", "gorgeous", "beautiful"),
                ("dim", "blurry", "grainy", "dull", "reflective", "washed-out")),
    "input": (("comfortable", "responsive", "precise", "smooth", "quiet", "accurate"),
              ("stiff", "unresponsive", "cramped", "mushy", "finicky", "jumpy")),
    "perf": (("fast", "quick", "smooth", "snappy", "reliable", "stable", "powerful", "seamless"),
             ("slow", "sluggish", "glitchy", "buggy", "unstable", "laggy", "unreliable")),
    "body": (("sleek", "sturdy", "elegant", "solid", "slim", "beautiful", "compact"),
             ("flimsy", "bulky", "cheap", "fragile", "heavy", "ugly", "plasticky")),
    "sound": (("loud", "clear", "rich", "crisp"), ("tinny", "muffled", "weak", "quiet", "distorted")),
    "fan": (("quiet", "silent", "efficient"), ("loud", "noisy", "whiny", "constant")),
    "service": (("helpful", "friendly", "quick", "excellent", "responsive", "professional", "patient"),
                ("rude", "unhelpful", "slow", "useless", "incompetent", "dismissive")),
    "price": (("reasonable", "affordable", "fair", "unbeatable", "low"), ("high", "steep", "outrageous", "ridiculous")),
    "io": (("convenient", "handy", "useful", "well-placed"), ("loose", "awkward", "limited", "useless")),
    "*": (("great", "excellent", "amazing", "fantastic", "good", "nice", "awesome", "wonderful", "perfect",
           "impressive", "superb", "outstanding", "solid"),
          ("terrible", "awful", "horrible", "bad", "poor", "disappointing", "mediocre", "lousy", "frustrating",
           "annoying")),
}
_RES_FOOD = ("food", "pizza", "sushi", "pasta", "steak", "fish", "salad", "burger", "fries", "dumplings",
             "bread", "dessert", "tiramisu", "lamb chops", "spicy tuna roll", "soup", "noodles", "tacos",
             "calamari", "risotto", "curry", "pad thai", "sashimi", "scallops", "chicken", "cheesecake",
             "appetizers", "entrees", "omelette", "pork buns", "garlic knots", "brunch")
_RES_PLURAL = {"fries", "dumplings", "lamb chops", "noodles", "tacos", "scallops", "appetizers", "entrees",
               "pork buns", "garlic knots", "drinks", "cocktails", "margaritas", "servers", "prices",
               "portions", "portion sizes"}
_RES_ASPECTS = tuple((a, "food", int(a in _RES_PLURAL)) for a in _RES_FOOD) + tuple(
    (a, cls, int(a in _RES_PLURAL)) for a, cls in (
        ("wine list", "drink"), ("drinks", "drink"), ("coffee", "drink"), ("cocktails", "drink"),
        ("beer selection", "drink"), ("sangria", "drink"), ("margaritas", "drink"),
        ("service", "staff"), ("staff", "staff"), ("waiter", "staff"), ("waitress", "staff"),
        ("host", "staff"), ("manager", "staff"), ("bartender", "staff"), ("servers", "staff"), ("owner", "staff"),
        ("ambience", "place"), ("atmosphere", "place"), ("decor", "place"), ("music", "place"), ("view", "place"),
        ("location", "place"), ("patio", "place"), ("dining room", "place"), ("seating", "place"),
        ("prices", "price"), ("bill", "price"), ("portions", "portion"), ("portion sizes", "portion"),
        ("wait", "wait"), ("delivery", "wait")))
_RES_OPS = {
    "food": (("delicious", "tasty", "fresh", "flavorful", "yummy", "amazing", "excellent", "incredible", "authentic",
              "perfect", "crispy", "tender", "juicy", "outstanding"),
             ("bland", "cold", "soggy", "stale", "greasy", "overcooked", "salty", "tasteless", "dry", "undercooked",
              "mediocre", "burnt", "rubbery", "oily")),
    "drink": (("great", "excellent", "strong", "extensive", "refreshing", "impressive", "delicious"),
              ("watery", "weak", "limited", "overpriced", "warm", "disappointing", "sour")),
    "staff": (("friendly", "attentive", "helpful", "polite", "prompt", "gracious", "knowledgeable", "welcoming",
               "efficient"), ("rude", "slow", "inattentive", "unfriendly", "arrogant", "dismissive", "clueless",
                              "careless", "pushy")),
    "place": (("cozy", "charming", "romantic", "lovely", "beautiful", "relaxing", "pleasant", "elegant", "inviting",
               "stunning"), ("loud", "cramped", "noisy", "dark", "dingy", "tacky", "crowded", "dirty", "stuffy")),
    "price": (("reasonable", "fair", "affordable", "low", "cheap", "unbeatable"),
              ("high", "steep", "outrageous", "ridiculous", "insane")),
    "portion": (("generous", "huge", "large", "big", "plentiful"), ("tiny", "small", "skimpy", "stingy")),
    "wait": (("short", "reasonable", "brief", "quick"), ("long", "endless", "ridiculous", "unbearable", "slow")),
    "*": (("great", "excellent", "amazing", "fantastic", "good", "nice", "awesome", "wonderful", "perfect", "superb",
           "outstanding", "terrific"),
          ("terrible", "awful", "horrible", "bad", "poor", "disappointing", "mediocre", "lousy", "pathetic")),
}
_NEU_OPS = ("average", "ordinary", "standard", "typical", "normal", "basic", "okay", "plain", "so-so", "adequate")
_INTENS = ("very", "really", "extremely", "so", "super", "quite", "incredibly", "pretty", "truly")
_NO_INTENS = {"perfect", "excellent", "outstanding", "superb", "fantastic", "unbeatable", "incredible", "amazing",
              "awesome", "terrific", "endless", "insane", "silent"}
_VERBS = {"positive": ("love", "loved", "like", "liked", "enjoyed", "adore", "recommend"),
          "negative": ("hate", "hated", "dislike", "disliked"),
          "negated": ("not like", "not enjoy", "not recommend")}

_DOMAIN = {
    "laptop": {
        "aspects": _LAP_ASPECTS, "ops": _LAP_OPS, "pol": (("positive", 0.58), ("negative", 0.32), ("neutral", 0.1)),
        "pre": ("After two weeks", "Overall", "To be honest", "For the most part", "Right out of the box",
                "Since the last update", "Compared to my old laptop", "For a machine this cheap", "Sadly",
                "Honestly"),
        "post": ("for the price", "for what I need", "for a laptop this size", "compared to my old one",
                 "after six months of use", "for school work", "for gaming", "so far"),
        # neutral mentions: (frame, aspect classes it fits; None = any)
        "neutral": (("I checked the {N} before buying it", None), ("I asked the store about the {N}", None),
                    ("I looked up the {N} in the manual", None), ("The salesman told me about the {N}", None),
                    ("My friend asked me about the {N}", None), ("I read a forum thread about the {N}", None),
                    ("I had to reset the {N} once", ("perf", "input", "io")),
                    ("I updated the {N} last night", ("perf",)),
                    ("I plugged in the {N} to charge it", ("charger",)),
                    ("I tested the {N} with a movie", ("display", "sound")),
                    ("I called the {N} about a refund", ("service",))),
        "context": ("I bought this laptop in March for school", "I mostly use it for email and some photo editing",
                    "My old computer finally died last month", "I have owned three machines from this brand",
                    "I use it every day at work and at home", "My brother recommended this model to me",
                    "I waited for a sale before ordering it online", "It replaced a six year old desktop"),
        "has": ("It has", "This laptop has", "The machine has", "My new notebook has", "You get"),
        "tense": (("is", "are"), ("was", "were")), "past_p": 0.3,
    },
    "restaurant": {
        "aspects": _RES_ASPECTS, "ops": _RES_OPS, "pol": (("positive", 0.7), ("negative", 0.2), ("neutral", 0.1)),
        "pre": ("Overall", "To be honest", "On our last visit", "When we came for dinner on Friday",
                "For a Sunday brunch spot", "As usual", "Sadly", "For a place this busy", "Honestly",
                "Last night"),
        "post": ("for the price", "for a weeknight", "for a place this busy", "as always", "that night",
                 "compared to other places nearby", "this time", "for the neighborhood"),
        "neutral": (("We ordered the {N}", ("food", "drink")), ("I asked about the {N}", None),
                    ("We came here for the {N}", ("food", "drink", "place")), ("I read about the {N} online", None),
                    ("Our group shared the {N}", ("food", "drink")), ("We had the {N} on Friday night", ("food", "drink")),
                    ("My date picked the {N}", ("food", "drink")), ("We talked to the {N} about our table", ("staff",)),
                    ("We looked at the {N} while we waited", ("place", "price", "drink")),
                    ("Someone at the next table mentioned the {N}", None)),
        "context": ("We went there with a group of eight for a birthday", "We had a reservation for seven on a Saturday",
                    "This place is right around the corner from my office", "I have been coming here for years",
                    "My wife and I stopped by after a movie", "We were in the neighborhood visiting friends",
                    "It was our first time there", "A coworker told us to try it"),
        "has": ("They serve", "The place has", "They have", "You get", "This spot offers"),
        "tense": (("is", "are"), ("was", "were")), "past_p": 0.6,
    },
}


class _Builder:
    """Collects whitespace tokens and the token spans of marked terms."""

    def __init__(self) -> None:
        self.toks: list[str] = []
        self.spans: dict[str, tuple[int, int]] = {}

    def add(self, piece: str, key: str | None = None) -> _Builder:
        start = len(self.toks)
        self.toks.extend(piece.split())
        if key is not None:
            self.spans[key] = (start, len(self.toks))
        return self

    def term(self, key: str) -> str:
        a, b = self.spans[key]
        return " ".join(self.toks[a:b])

    def finish(self) -> str:
        self.toks[0] = _cap(self.toks[0])
        return " ".join(self.toks)


def _pick_aspects(rng: random.Random, dom: dict, k: int) -> list[tuple[str, str, int]]:
    """``k`` distinct aspects, none of which contains another's words."""
    out: list[tuple[str, str, int]] = []
    while len(out) < k:
        a = _c(rng, dom["aspects"])
        words = set(a[0].lower().split())
        if all(not (words & set(b[0].lower().split())) for b in out):
            out.append(a)
    return out


def _opinion(rng: random.Random, dom: dict, cls: str, pol: str) -> str:
    """An opinion term with polarity ``pol`` for an aspect of class ``cls``; sometimes negated."""
    if pol == "neutral":
        return _c(rng, _NEU_OPS)
    pos, neg = dom["ops"][cls] if rng.random() < 0.65 else dom["ops"]["*"]
    if rng.random() < 0.13:  # negation flips: "not bright" is negative, "not slow" positive
        return "not " + _c(rng, neg if pol == "positive" else pos)
    return _c(rng, pos if pol == "positive" else neg)


def _neutral_frame(rng: random.Random, dom: dict, asp) -> list[str]:
    """A neutral-mention frame that fits the aspect's class, split around the aspect slot."""
    frames = [f for f, classes in dom["neutral"] if classes is None or asp[1] in classes]
    return _c(rng, frames).split("{N}")


def _absa_unit(rng: random.Random, domain: str, allow_no_triplet: bool):
    """One review sentence: (text, mentions) with mentions = [(aspect, opinion | None, polarity)]
    in text order; ``opinion is None`` marks a neutral mention without an opinion term."""
    dom = _DOMAIN[domain]
    past = rng.random() < dom["past_p"]
    be = dom["tense"][1 if past else 0]
    pol_w = dom["pol"]
    b = _Builder()
    ments: list[tuple[str, str | None, str]] = []  # keys into b.spans

    def intens(op: str, before_noun: bool = False) -> str:
        if op.startswith("not ") or op in _NO_INTENS or rng.random() > 0.3:
            return ""
        word = _c(rng, _INTENS)
        return "really" if before_noun and word == "so" else word  # "so bright screen" is not English

    def copular(i: int, asp, pol: str, det: str = "the") -> None:
        """'the {A} is {I} {O}'"""
        op = _opinion(rng, dom, asp[1], pol)
        b.add(det).add(asp[0], f"A{i}").add(be[asp[2]]).add(intens(op)).add(op, f"O{i}")
        ments.append((f"A{i}", f"O{i}", pol))

    def attributive(i: int, asp, pol: str) -> None:
        """'{I} {O} {A}'"""
        op = _opinion(rng, dom, asp[1], pol)
        if op.startswith("not "):
            op = _opinion(rng, dom, asp[1], pol)
            if op.startswith("not "):
                op = op[4:]
                pol = "negative" if pol == "positive" else "positive"
        b.add(intens(op, before_noun=True)).add(op, f"O{i}").add(asp[0], f"A{i}")
        ments.append((f"A{i}", f"O{i}", pol))

    structures = [("single", 0.36), ("contrast", 0.2), ("same", 0.1), ("shared_op", 0.06), ("two_ops", 0.06),
                  ("triple", 0.06), ("neutral_plus", 0.11)]
    if allow_no_triplet:
        structures.append(("neutral_only", 0.05))
    kind = _w(rng, structures)
    if kind == "single":
        (asp,) = _pick_aspects(rng, dom, 1)
        pol = _w(rng, pol_w)
        form = rng.randrange(6)
        if form == 0:
            copular(0, asp, pol, "The")
            b.add(_maybe(rng, 0.4, dom["post"]))
        elif form == 1:
            b.add(_c(rng, dom["pre"]) + " ,")
            copular(0, asp, pol)
        elif form == 2:
            op = _opinion(rng, dom, asp[1], pol)
            b.add("I found the").add(asp[0], "A0").add("to be").add(intens(op)).add(op, "O0")
            ments.append(("A0", "O0", pol))
        elif form == 3:
            b.add(_c(rng, dom["has"]))
            start = len(b.toks)
            attributive(0, asp, pol)
            if not asp[2] and asp[0] not in ("food", "service", "music", "software", "memory", "wifi", "performance",
                                             "sound", "audio", "decor", "ambience", "seating", "delivery"):
                b.toks.insert(start, _an(b.toks[start]))
                b.spans = {k: (s + 1, e + 1) for k, (s, e) in b.spans.items()}
            b.add(_maybe(rng, 0.4, dom["post"]))
        elif form == 4 and pol != "neutral":
            verb = _c(rng, _VERBS[pol]) if rng.random() > 0.2 else None
            if verb is None:
                verb = _c(rng, _VERBS["negated"])
                pol = "negative"
                b.add("I do" if not past else "I did")
            else:
                b.add("I")
            b.add(verb, "O0").add("the").add(asp[0], "A0")
            ments.append(("A0", "O0", pol))
            b.add(_maybe(rng, 0.4, dom["post"]))
        else:
            attributive(0, asp, pol)
            b.add(_c(rng, ("!", ", " + _c(rng, dom["post"]) + " !", ", nothing more to say")))
        if b.toks[-1] != "!":
            b.add(".")
    elif kind == "contrast":
        a0, a1 = _pick_aspects(rng, dom, 2)
        p0 = _w(rng, (("positive", 0.5), ("negative", 0.5)))
        p1 = "negative" if p0 == "positive" else "positive"
        form = rng.randrange(4)
        if form == 0:
            copular(0, a0, p0, "The")
            b.add(", but")
            copular(1, a1, p1)
        elif form == 1:
            b.add("Although")
            copular(0, a0, p0)
            b.add(",")
            copular(1, a1, p1)
        elif form == 2:
            attributive(0, a0, p0)
            b.add(", but")
            attributive(1, a1, p1)
        else:
            copular(0, a0, p0, "The")
            b.add("; however ,")
            copular(1, a1, p1)
        b.add(".")
    elif kind == "same":
        a0, a1 = _pick_aspects(rng, dom, 2)
        p = _w(rng, pol_w)
        if rng.random() < 0.5:
            copular(0, a0, p, "The")
            b.add("and")
            copular(1, a1, p)
            b.add(_maybe(rng, 0.5, ("too", "as well")))
        else:
            attributive(0, a0, p)
            b.add("and")
            attributive(1, a1, p)
        b.add(".")
    elif kind == "shared_op":
        a0, a1 = _pick_aspects(rng, dom, 2)
        p = _w(rng, pol_w)
        op = _opinion(rng, dom, "*", p)
        b.add(_c(rng, ("Both the", "The"))).add(a0[0], "A0").add("and the").add(a1[0], "A1")
        b.add(be[1]).add(intens(op)).add(op, "O0").add(".")
        ments += [("A0", "O0", p), ("A1", "O0", p)]
    elif kind == "two_ops":
        (asp,) = _pick_aspects(rng, dom, 1)
        p = _w(rng, (("positive", 0.55), ("negative", 0.45)))
        o0 = o1 = "not set"
        while o0.startswith("not "):
            o0 = _opinion(rng, dom, asp[1], p)
        while o1 == o0 or o1.startswith("not "):
            o1 = _opinion(rng, dom, asp[1], p)
        b.add("The").add(asp[0], "A0").add(be[asp[2]]).add(o0, "O0").add("and").add(o1, "O1").add(".")
        ments += [("A0", "O0", p), ("A0", "O1", p)]
    elif kind == "triple":
        a0, a1, a2 = _pick_aspects(rng, dom, 3)
        copular(0, a0, _w(rng, pol_w), "The")
        b.add(",")
        copular(1, a1, _w(rng, pol_w))
        b.add(", and")
        copular(2, a2, _w(rng, pol_w))
        b.add(".")
    elif kind == "neutral_plus":
        be = dom["tense"][1]  # the neutral frames tell what happened: past tense throughout
        n0, a1 = _pick_aspects(rng, dom, 2)
        frame = _neutral_frame(rng, dom, n0)
        if rng.random() < 0.6:
            b.add(frame[0]).add(n0[0], "A0").add(frame[1]).add(", and")
            ments.append(("A0", None, "neutral"))
            copular(1, a1, _w(rng, pol_w))
        else:
            copular(1, a1, _w(rng, pol_w), "The")
            b.add(".").add(frame[0]).add(n0[0], "A0").add(frame[1])
            ments.append(("A0", None, "neutral"))
        b.add(".")
    else:  # neutral_only
        (n0,) = _pick_aspects(rng, dom, 1)
        frame = _neutral_frame(rng, dom, n0)
        b.add(frame[0]).add(n0[0], "A0")
        ments.append(("A0", None, "neutral"))
        words = set(n0[0].lower().split())
        same = [a for a in dom["aspects"] if a[1] == n0[1] and not words & set(a[0].lower().split())]
        if same and rng.random() < 0.5:
            b.add("and the").add(_c(rng, same)[0], "A1")
            ments.append(("A1", None, "neutral"))
        b.add(frame[1]).add(".")
    if rng.random() < 0.25:  # a neutral context sentence before or after
        ctx = _c(rng, dom["context"]) + " ."
        if rng.random() < 0.5:
            b.add(ctx)
        else:
            b.toks[0] = _cap(b.toks[0])
            n = len(ctx.split())
            b.toks = ctx.split() + b.toks
            b.spans = {k: (s + n, e + n) for k, (s, e) in b.spans.items()}
    text = b.finish()
    out = [(b.term(a), b.term(o) if o else None, p) for a, o, p in ments]
    order = sorted(range(len(ments)), key=lambda i: (b.spans[ments[i][0]][0],
                                                   b.spans[ments[i][1]][0] if ments[i][1] else -1))
    return text, [out[i] for i in order]


def _occurrences(text: str, term: str) -> int:
    toks, t = text.split(), term.split()
    return sum(toks[i:i + len(t)] == t for i in range(len(toks) - len(t) + 1))


def _gen_atsc(domain: str) -> Callable[[random.Random], Unit]:
    def gen(rng: random.Random) -> Unit:
        text, ments = _absa_unit(rng, domain, allow_no_triplet=True)
        docs: list[dict] = []
        labels: dict[str, str] = {}
        for asp, _, pol in ments:
            if asp in labels:
                if labels[asp] != pol:
                    return []  # same term, two polarities: unusable (the real data drops these too)
                continue
            if _occurrences(text, asp) != 1:
                return []
            labels[asp] = pol
            docs.append({"text": text, "aspect": asp, "label": pol})
        return docs
    return gen


def _gen_aste(domain: str) -> Callable[[random.Random], Unit]:
    def gen(rng: random.Random) -> Unit:
        text, ments = _absa_unit(rng, domain, allow_no_triplet=False)
        trips = [[a, o, p] for a, o, p in ments if o is not None]
        if not trips:
            return []
        return [{"text": text, "triplets": trips}]
    return gen


_GENERATORS: dict[str, Callable[[random.Random], Unit]] = {
    "sst2": _gen_sst2,
    "sst5": _gen_sst5,
    "tweet_sentiment": _gen_tweet_sentiment,
    "lap14_atsc": _gen_atsc("laptop"),
    "rest14_atsc": _gen_atsc("restaurant"),
    "aste_lap14": _gen_aste("laptop"),
    "aste_res14": _gen_aste("restaurant"),
    "tweet_emotion": _gen_tweet_emotion,
    "tweet_irony": _gen_tweet_irony,
    "tweet_hate": _gen_tweet_hate,
    "tweet_offensive": _gen_tweet_offensive,
    "tweet_stance": _gen_tweet_stance,
}


# ================================================================================================
# Splits, files, cache
# ================================================================================================
def _split_of(seed: int, task: str, text: str) -> str:
    b = stable_hash(f"{seed}|{task}|{text}") % 20
    return next(s for s, r in _BUCKETS.items() if b in r)


def _doc_key_order(spec: TaskSpec, doc: dict) -> dict:
    keys = ["id", "text"]
    if spec.context_field:
        keys.append(spec.context_field)
    keys.append("triplets" if spec.is_generative else "label")
    return {k: doc[k] for k in keys}


def _sizes(sizes: Mapping[str, int] | None) -> dict[str, int]:
    out = dict(DEFAULT_SIZES)
    for k, v in (sizes or {}).items():
        if k not in DEFAULT_SIZES:
            raise ValueError(f"unknown split {k!r} in sizes; expected some of {', '.join(DEFAULT_SIZES)}")
        if int(v) < 1:
            raise ValueError(f"size of split {k!r} must be positive, got {v}")
        out[k] = int(v)
    return out


def _gold_labels(spec: TaskSpec, doc: Mapping) -> list[str]:
    return [t[2] for t in doc["triplets"]] if spec.is_generative else [doc["label"]]


def _sample_test_500(spec: TaskSpec, test: list[dict], seed: int) -> list[dict]:
    """The fixed stratified sample of at most 500 test examples (all of them when there are fewer)."""
    if len(test) <= TEST_500:
        return list(test)
    rng = random.Random(seed ^ stable_hash(f"{spec.name}/test_500"))
    by_label: dict[str, list[int]] = {}
    for i, d in enumerate(test):
        by_label.setdefault(_gold_labels(spec, d)[0] if _gold_labels(spec, d) else "", []).append(i)
    keys = sorted(by_label)
    quota = {k: TEST_500 * len(by_label[k]) // len(test) for k in keys}
    rest = TEST_500 - sum(quota.values())
    for k in sorted(keys, key=lambda k: (-(TEST_500 * len(by_label[k]) % len(test)), k))[:rest]:
        quota[k] += 1
    chosen: list[int] = []
    for k in keys:
        chosen += rng.sample(by_label[k], quota[k])
    return [test[i] for i in sorted(chosen)]


def generate_split(task_name: str, split: str, n: int | None = None, seed: int = 0) -> list[dict]:
    """The ``n`` documents of one split of one task (default sizes: train 512, dev 128, test 256).

    For ``test_500``, ``n`` is the size of the test split it is sampled from: the result is that test
    split when it has at most 500 examples, else a fixed stratified sample of 500 of it.
    Same arguments -> the same documents; different splits never share a text.
    """
    spec = get_task(task_name)
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split == "test_500":
        return _sample_test_500(spec, generate_split(spec.name, "test", n, seed), seed)
    n = DEFAULT_SIZES[split] if n is None else int(n)
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    gen = _GENERATORS[spec.name]
    rng = random.Random(seed ^ stable_hash(f"{spec.name}/{split}"))
    docs: list[dict] = []
    seen: set[str] = set()  # membership only, never iterated: order stays deterministic
    attempts, max_attempts = 0, 2000 + 200 * n
    while len(docs) < n:
        attempts += 1
        if attempts > max_attempts:
            raise RuntimeError(f"corpus generator for {spec.name}/{split} could not find {n} distinct texts "
                               f"(got {len(docs)} after {max_attempts} attempts)")
        unit = gen(rng)
        if not unit:
            continue
        text = unit[0]["text"]
        if text in seen or not (MIN_WORDS <= len(text.split()) <= MAX_WORDS):
            continue
        if _split_of(seed, spec.name, text) != split:
            continue
        seen.add(text)
        for d in unit:
            if len(docs) == n:
                break
            d = dict(d, id=f"{spec.name}-{split}-{len(docs):05d}")
            reason = spec.check_doc(d)
            if reason:  # a generator bug, never data: fail loudly
                raise AssertionError(f"generated {spec.name}/{split} doc is invalid: {reason}: {d}")
            docs.append(_doc_key_order(spec, d))
    return docs


def _task_meta(spec: TaskSpec, splits: Mapping[str, list[dict]], seed: int) -> dict:
    label_counts = {}
    item_counts = {}
    for split, docs in splits.items():
        counts = {lab: 0 for lab in sorted(spec.labels)}
        for d in docs:
            for lab in _gold_labels(spec, d):
                counts[lab] += 1
        label_counts[split] = counts
        item_counts[split] = sum(counts.values())
    meta = {
        "name": spec.name,
        "group": spec.group,
        "type": spec.type,
        "labels": list(spec.labels),
        "fields": ["id", "text"] + ([spec.context_field] if spec.context_field else [])
        + ["triplets" if spec.is_generative else "label"],
        "counts": {split: len(docs) for split, docs in splits.items()},
    }
    if spec.is_generative:
        meta["item_counts"] = item_counts
    meta.update({
        "label_counts": label_counts,
        "metric": spec.metric,
        "source": {"repo": None, "ref": f"memmcl_merge.corpus {CORPUS_VERSION}", "generator": "memmcl_merge.corpus",
                   "version": CORPUS_VERSION, "seed": seed, "local_folder": spec.name},
        "license": "generated by memmcl_merge.corpus from its own templates (Apache-2.0, like the project)",
        "derivation": f"Synthetic {spec.description or spec.name} look-alike: templates x slot fillers, "
                      f"deterministic from seed {seed}; splits are disjoint by text.",
    })
    return meta


def _dump_jsonl(path: Path, docs: Sequence[Mapping]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for d in docs:
            fh.write(json.dumps(d, ensure_ascii=False) + "\n")


def _build(dest: Path, seed: int, sizes: Mapping[str, int]) -> None:
    meta = {"generated_by": f"memmcl_merge.corpus {CORPUS_VERSION} (synthetic, no real data), seed {seed}",
            "seed": seed, "version": CORPUS_VERSION, "sizes": dict(sizes), "tasks": {}}
    for spec in TASKS.values():
        splits = {s: generate_split(spec.name, s, sizes[s], seed) for s in ("train", "dev", "test")}
        splits["test_500"] = _sample_test_500(spec, splits["test"], seed)
        (dest / spec.name).mkdir()
        for split, docs in splits.items():
            _dump_jsonl(dest / spec.name / f"{split}.jsonl", docs)
        meta["tasks"][spec.name] = _task_meta(spec, splits, seed)
    (dest / "tasks.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write(out_dir: Path, seed: int, sizes, replace: bool) -> Path:
    out_dir = Path(out_dir).expanduser().absolute()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        _build(tmp, seed, _sizes(sizes))
        if replace and out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "corpus")  # move the old one aside, then swap the new one in
            try:
                os.rename(tmp, out_dir)
            except BaseException:
                os.replace(old / "corpus", out_dir)
                raise
            finally:
                shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(tmp, out_dir)  # fails when out_dir exists and is not empty
            except OSError:
                if replace or not (out_dir / "tasks.json").is_file():
                    raise
                shutil.rmtree(tmp, ignore_errors=True)  # another process won the race; use its copy
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def write_corpus(out_dir: Path, seed: int = 0, sizes: Mapping[str, int] | None = None) -> Path:
    """Write ``<out_dir>/<task>/<split>.jsonl`` for all tasks and ``<out_dir>/tasks.json``.

    The corpus is built in a temporary folder beside ``out_dir`` and renamed into place, so a crash
    never leaves a half-written folder; an existing ``out_dir`` is replaced. ``sizes`` overrides some
    of ``{"train": 512, "dev": 128, "test": 256}``. Returns ``out_dir``.
    """
    return _write(Path(out_dir), seed, sizes, replace=True)


def default_corpus_dir(seed: int = 0) -> Path:
    """``$MEMMCL_CACHE/corpus/<version>-seed<seed>`` (cache root defaults to ``~/.cache/memmcl``)."""
    root = os.environ.get(CACHE_ENV) or str(Path("~/.cache/memmcl").expanduser())
    return Path(root).expanduser() / "corpus" / f"{CORPUS_VERSION}-seed{seed}"


def ensure_corpus(seed: int = 0) -> Path:
    """The cached default corpus, written on first use and reused afterwards."""
    out = default_corpus_dir(seed)
    if (out / "tasks.json").is_file():
        return out
    if out.exists():  # not ours (no tasks.json): something half-made by hand; rebuild it
        return _write(out, seed, None, replace=True)
    return _write(out, seed, None, replace=False)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or len(args) > 2:
        print("usage: python -m memmcl_merge.corpus OUT_DIR [SEED]", file=sys.stderr)
        return 0 if args and args[0] in ("-h", "--help") else 2
    print(write_corpus(Path(args[0]), seed=int(args[1]) if len(args) > 1 else 0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
