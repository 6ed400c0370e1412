"""Few-shot exemplars, written for lmsi (not taken from the paper, other repos or any
benchmark split). Direct-answer prompts reuse them without the reasoning."""

from __future__ import annotations

from .base import Exemplar, with_choices

# Short, varied arithmetic; shared by the numeric tasks.
MATH_EXEMPLARS = (
    Exemplar(
        "A library has 45 books on a shelf. It lends out 12 and receives 8 new ones. How many books are on the shelf now?",
        "It starts with 45 books. After lending 12 it has 45 - 12 = 33. With 8 new ones it has 33 + 8 = 41.",
        "41",
    ),
    Exemplar(
        "Each crate holds 6 melons. A truck carries 7 crates and 5 loose melons. How many melons does the truck carry?",
        "The crates hold 7 * 6 = 42 melons. With the loose ones, 42 + 5 = 47.",
        "47",
    ),
    Exemplar(
        "Nora splits 56 marbles equally among 8 friends, then each friend gets 2 more from her brother. How many marbles does each friend have?",
        "Each friend first gets 56 / 8 = 7 marbles. With 2 more, each has 7 + 2 = 9.",
        "9",
    ),
    Exemplar(
        "A ticket costs $4. Ravi buys tickets for himself and 3 friends and pays with a $20 bill. How much change does he get?",
        "He buys 1 + 3 = 4 tickets, which cost 4 * 4 = 16 dollars. His change is 20 - 16 = 4 dollars.",
        "4",
    ),
)

# AQuA-style: algebra word problems with five lettered options.
AQUA_EXEMPLARS = (
    Exemplar(
        with_choices(
            "A shirt costs $25 after a 20% discount. What was the price before the discount?",
            ["$20", "$28", "$30", "$31.25", "$35"],
        ),
        "If the old price is p, then 0.8p = 25, so p = 25 / 0.8 = 31.25 dollars, which is option D.",
        "D",
    ),
    Exemplar(
        with_choices(
            "Two trains leave the same station in opposite directions at 40 km/h and 60 km/h. After how many hours are they 250 km apart?",
            ["2", "2.5", "3", "3.5", "4"],
        ),
        "They move apart at 40 + 60 = 100 km/h. To be 250 km apart takes 250 / 100 = 2.5 hours, which is option B.",
        "B",
    ),
    Exemplar(
        with_choices("If 3x - 7 = 2x + 5, what is x?", ["-12", "2", "8", "12", "15"]),
        "Subtracting 2x from both sides gives x - 7 = 5, so x = 12, which is option D.",
        "D",
    ),
)

# Grade-school science (ARC-Challenge, OpenBookQA): four options.
SCIENCE_EXEMPLARS = (
    Exemplar(
        with_choices(
            "A student leaves a metal spoon and a wooden spoon in a pot of hot soup. Why does the metal spoon feel hotter?",
            [
                "Metal conducts heat better than wood.",
                "Wood absorbs more light than metal.",
                "Metal is lighter than wood.",
                "Wood is a better conductor of heat.",
            ],
        ),
        "Heat moves from the soup up through the spoon. Metals are good conductors of heat and wood is an insulator, so the metal handle warms up more.",
        "A",
    ),
    Exemplar(
        with_choices("Which of these is a renewable source of energy?", ["coal", "natural gas", "wind", "oil"]),
        "Coal, natural gas and oil are fossil fuels that take millions of years to form. Wind keeps being produced by the weather, so it is renewable.",
        "C",
    ),
    Exemplar(
        with_choices(
            "A plant kept in a dark closet for two weeks turns pale. What does the plant lack?",
            ["water for its roots", "light for photosynthesis", "soil nutrients", "carbon dioxide from animals"],
        ),
        "Plants make food and their green pigment using light. In a dark closet there is no light, so photosynthesis stops and the plant turns pale.",
        "B",
    ),
)

# Everyday commonsense (CommonsenseQA): five options.
COMMONSENSE_EXEMPLARS = (
    Exemplar(
        with_choices(
            "Where would you keep milk so that it stays cold?",
            ["cupboard", "refrigerator", "oven", "mailbox", "garden"],
        ),
        "Milk spoils when warm. A refrigerator is the appliance that keeps food cold.",
        "B",
    ),
    Exemplar(
        with_choices(
            "What do people usually do when they feel tired at night?",
            ["run a race", "go to sleep", "cook dinner", "paint a house", "start work"],
        ),
        "Feeling tired at night is a sign the body needs rest, and rest at night means sleep.",
        "B",
    ),
    Exemplar(
        with_choices(
            "If you want to cross a wide river without getting wet, what could you use?",
            ["umbrella", "ladder", "bridge", "towel", "map"],
        ),
        "Crossing water while staying dry needs something that spans the river. A bridge does that.",
        "C",
    ),
)

# Yes/no questions that need an implicit chain of facts (StrategyQA).
STRATEGY_EXEMPLARS = (
    Exemplar(
        "Could a cat fit inside a standard shoebox?",
        "A house cat is about 45 cm long without its tail and can curl up small. A shoebox is about 30 cm long. A curled-up small cat could squeeze in.",
        "yes",
    ),
    Exemplar(
        "Would a person born in 1990 have voted in the 2000 US presidential election?",
        "In 2000 a person born in 1990 was about 10 years old. The voting age in the US is 18, so they could not vote.",
        "no",
    ),
    Exemplar(
        "Is ice cream a good snack to carry across a desert on foot?",
        "Deserts are hot and ice cream melts within minutes above freezing. Without a freezer it would melt long before it was eaten.",
        "no",
    ),
)

# Three-way natural language inference (ANLI): yes / no / it is not possible to tell.
NLI_EXEMPLARS = (
    Exemplar(
        "Premise: The bakery on Main Street opened in 1985 and is run by two sisters.\nHypothesis: The bakery has been open for less than ten years.\nDoes the premise imply the hypothesis? Answer yes, no, or it is not possible to tell.",
        "The bakery opened in 1985, which is decades ago, so it has been open for more than ten years. The premise contradicts the hypothesis.",
        "no",
    ),
    Exemplar(
        "Premise: Marta finished the marathon in just under four hours despite the rain.\nHypothesis: Marta completed a marathon.\nDoes the premise imply the hypothesis? Answer yes, no, or it is not possible to tell.",
        "Finishing the marathon means she completed it, so the hypothesis follows from the premise.",
        "yes",
    ),
    Exemplar(
        "Premise: The museum added a new wing for modern sculpture last spring.\nHypothesis: The new wing was paid for by a private donor.\nDoes the premise imply the hypothesis? Answer yes, no, or it is not possible to tell.",
        "The premise says nothing about who paid for the wing. It could have been a donor or the city, so we cannot tell.",
        "it is not possible to tell",
    ),
)

# Reading comprehension with counting and arithmetic over a passage (DROP).
DROP_EXEMPLARS = (
    Exemplar(
        "Passage: The Falcons scored first with a 32-yard field goal. The Bears answered with two touchdowns in the second quarter, and the Falcons added a 15-yard touchdown pass before halftime.\nQuestion: How many touchdowns were scored in the first half?",
        "The Bears scored two touchdowns and the Falcons scored one touchdown pass before halftime. That is 2 + 1 = 3.",
        "3",
    ),
    Exemplar(
        "Passage: In 2010 the town had 12,400 residents. By 2020 the population had grown to 15,100, mostly because of a new factory.\nQuestion: By how many residents did the population grow between 2010 and 2020?",
        "The population went from 12,400 to 15,100. The growth is 15,100 - 12,400 = 2,700.",
        "2700",
    ),
    Exemplar(
        "Passage: The treaty was signed by Sweden and Denmark in 1660, ending two years of war. Norway later joined the alliance.\nQuestion: Which countries signed the treaty?",
        "The passage says the treaty was signed by Sweden and Denmark; Norway joined the alliance later, not the treaty.",
        "Sweden and Denmark",
    ),
)

# Competition-style problems (answer_type=math): worked reasoning, then a boxed final answer.
COMPETITION_EXEMPLARS = (
    Exemplar(
        "A jar holds 3 red and 5 blue marbles. Two marbles are drawn without replacement. What is the probability that both are red?",
        "The first draw is red with probability $\\frac{3}{8}$; then 2 red remain among 7, so the second is red with probability $\\frac{2}{7}$. Together $\\frac{3}{8} \\cdot \\frac{2}{7} = \\frac{6}{56} = \\frac{3}{28}$.",
        "\\frac{3}{28}",
    ),
    Exemplar(
        "Which real numbers $x$ satisfy $|2x - 1| \\le 5$? Give the answer in interval notation.",
        "The inequality means $-5 \\le 2x - 1 \\le 5$, so $-4 \\le 2x \\le 6$ and $-2 \\le x \\le 3$. Both ends are included.",
        "[-2, 3]",
    ),
    Exemplar(
        "How far apart are the points $(1, -2)$ and $(5, 0)$ in the plane?",
        "The differences are $5 - 1 = 4$ and $0 - (-2) = 2$, so the distance is $\\sqrt{4^2 + 2^2} = \\sqrt{20} = 2\\sqrt{5}$.",
        "2\\sqrt{5}",
    ),
    Exemplar(
        "Find all integers $n$ with $n^2 - 7n + 12 = 0$.",
        "The left side factors as $(n - 3)(n - 4)$, which is zero when $n = 3$ or $n = 4$.",
        "\\{3, 4\\}",
    ),
)
