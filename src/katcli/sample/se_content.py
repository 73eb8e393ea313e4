"""Hand-written Stack Exchange questions and answers (HTML) for the sample mirror, per site.

Each question is (question HTML, [(answer HTML, pm_score, selected), ...]). Higher-scored answers are the
better ones; some questions have score ties or a single answer on purpose (they exercise the drop rules).
Plain data; imports nothing.
"""

from __future__ import annotations

Answer = tuple[str, int, bool]
Question = tuple[str, list[Answer]]

COOKING: list[Question] = [
    ("<p>Why does my bread come out dense and heavy?</p><p>I follow the recipe but the loaf barely rises.</p>",
     [("<p>Most often the dough is <strong>under-proofed</strong> or the yeast is dead.</p><ul><li>Check the "
       "yeast by dissolving it in warm (not hot) water with a pinch of sugar; it should foam in 10 minutes."
       "</li><li>Let the dough rise until it has roughly doubled, which can take longer in a cold kitchen."
       "</li><li>Knead long enough to develop gluten: the dough should stretch thin without tearing.</li>"
       "</ul>", 3, True),
      ("<p>Use more flour.</p>", 0, False)]),
    ("<p>Can I substitute baking soda for baking powder?</p>",
     [("<p>Only with an acid. Baking powder is baking soda <em>plus</em> an acid. To replace 1 teaspoon "
       "of baking powder use &frac14; teaspoon of baking soda and &frac12; teaspoon of cream of tartar, or "
       "replace some of the liquid with buttermilk or yogurt.</p>", 4, True),
      ("<p>Yes, they're the same thing.</p>", -1, False),
      ("<p>Use a bit less soda than the recipe says for powder.</p>", 1, False)]),
    ("<p>How do I stop pasta from sticking together?</p>",
     [("<p>Use plenty of water (about 4 litres per 500 g), make sure it is at a rolling boil before the "
       "pasta goes in, and <strong>stir during the first two minutes</strong>. Oil in the water doesn't "
       "help much; it just floats on top.</p>", 3, False),
      ("<p>Add oil to the water.</p>", 1, False)]),
    ("<p>What is the difference between stock and broth?</p>",
     [("<p>Stock is made mainly from bones and is simmered for a long time, so it's rich in gelatin; broth "
       "is made mainly from meat and vegetables and is usually seasoned to be eaten on its own.</p>", 2, True),
      ("<p>Stock is cubes, broth is liquid.</p>", 0, False)]),
    ("<p>Why do my cookies spread so much in the oven?</p>",
     [("<p>Common causes:</p><ol><li>Butter too soft or melted &mdash; chill the dough for 30 minutes."
       "</li><li>Too much sugar relative to flour.</li><li>Baking on a hot tray &mdash; let trays cool "
       "between batches.</li></ol>", 3, True),
      ("<p>Your oven is broken.</p>", 0, False)]),
    ("<p>How long can cooked rice stay in the fridge?</p>",
     [("<p>Cool it quickly (within an hour) and refrigerate; eat it within <strong>one day</strong> "
       "according to the UK NHS, or up to 3&ndash;4 days by USDA guidance. Rice can carry <em>Bacillus "
       "cereus</em> spores that survive cooking, so slow cooling is the main risk.</p>", 4, True),
      ("<p>A couple of weeks is fine.</p>", -1, False)]),
    ("<p>Is it safe to eat raw cookie dough?</p>",
     [("<p>Not entirely: raw flour can carry <em>E. coli</em> and raw eggs can carry <em>Salmonella</em>. "
       "Heat-treated flour and pasteurised eggs make it much safer.</p>", 2, False),
      ("<p>It's totally safe, everyone eats it.</p>", 2, False)]),  # tie: no preference
    ("<p>What oil is best for deep frying?</p>",
     [("<p>Use a neutral oil with a high smoke point, such as peanut, canola/rapeseed, sunflower or rice "
       "bran oil. Keep it at 175&ndash;190&nbsp;&deg;C and filter it between uses.</p>", 3, True),
      ("<p>Extra virgin olive oil &mdash; it's the healthiest.</p>", 1, False),
      ("<p>Butter.</p>", 0, False)]),
    ("<p>How can I tell when a steak is medium-rare without cutting it?</p>",
     [("<p>Use an instant-read thermometer: pull it at about 52&ndash;54&nbsp;&deg;C and let it rest to "
       "around 55&ndash;57&nbsp;&deg;C. The finger test is unreliable.</p>", 3, True),
      ("<p>Cook it 10 minutes per side.</p>", 0, False)]),
    ("<p>Why did my mayonnaise split?</p>",
     [("<p>The oil was added too fast for the yolk to emulsify it. Start again with a fresh yolk in a clean "
       "bowl and whisk the broken mayo into it <em>drop by drop</em>.</p>", 2, True)]),  # one answer only
    ("<p>What does &quot;fold&quot; mean in a recipe?</p>",
     [("<p>Gently combining a light mixture (like whipped egg whites) with a heavier one, using a spatula "
       "to cut down through the middle and lift the mixture over itself, so the air isn't knocked out.</p>",
       2, True),
      ("<p>Stir as hard as you can.</p>", 0, False)]),
    ("<p>How do I keep avocados from turning brown?</p>",
     [("<p>Limit air contact: squeeze lemon or lime juice on the cut surface and press plastic wrap directly "
       "onto it. Keeping the stone in only protects the part it covers.</p>", 1, False),
      ("<p></p>", 3, True)]),  # the best-scored answer is empty: the next pair is used
]

MATH: list[Question] = [
    ("<p>Why is <code>0.999...</code> equal to 1?</p>",
     [("<p>Let <code>x = 0.999...</code>. Then <code>10x = 9.999...</code>, and subtracting gives "
       "<code>9x = 9</code>, so <code>x = 1</code>. More rigorously, the decimal is the limit of the partial "
       "sums <code>1 - 10^-n</code>, which is 1.</p>", 5, True),
      ("<p>It isn't, it's always a tiny bit less.</p>", -1, False)]),
    ("<p>What is the derivative of <code>e^x</code>?</p>",
     [("<p>The derivative of <code>e^x</code> is <code>e^x</code> itself; it's the unique function (up to "
       "a constant factor) equal to its own derivative.</p>", 3, True),
      ("<p><code>x e^(x-1)</code></p>", 0, False)]),
    ("<p>Why can't we divide by zero?</p>",
     [("<p>Division is defined as the inverse of multiplication: <code>a/b = c</code> means "
       "<code>c &times; b = a</code>. If <code>b = 0</code> and <code>a &ne; 0</code> no <code>c</code> works, "
       "and if <code>a = 0</code> every <code>c</code> works, so no single answer exists.</p>", 4, True),
      ("<p>Because calculators give an error.</p>", 0, False),
      ("<p>Because it's infinity.</p>", 1, False)]),
    ("<p>Is there a largest prime number?</p>",
     [("<p>No. Euclid's proof: suppose <code>p1, ..., pn</code> are all the primes. Then "
       "<code>p1 &times; ... &times; pn + 1</code> is not divisible by any of them, so it is prime or has a "
       "prime factor not in the list &mdash; a contradiction.</p>", 5, True),
      ("<p>Yes, mathematicians found it recently.</p>", -1, False)]),
    ("<p>What is the sum of the first <code>n</code> positive integers?</p>",
     [("<p><code>n(n+1)/2</code>. Write the sum forwards and backwards and add: each of the <code>n</code> "
       "columns sums to <code>n + 1</code>.</p>", 3, True),
      ("<p><code>n^2</code></p>", 0, False)]),
    ("<p>What is the difference between a permutation and a combination?</p>",
     [("<p>In a permutation the order matters; in a combination it does not. Choosing 2 of {a, b, c}: 6 "
       "permutations (ab, ba, ...) but 3 combinations.</p>", 2, False),
      ("<p>Order matters in permutations, not in combinations.</p>", 2, False)]),  # tie
]

SUPERUSER: list[Question] = [
    ("<p>How do I find which process is using a port on Linux?</p>",
     [("<p>Use <code>ss</code> or <code>lsof</code>:</p><pre><code>sudo ss -ltnp 'sport = :8080'\n"
       "sudo lsof -i :8080\n</code></pre><p>Both show the PID and program name.</p>", 4, True),
      ("<p>Reboot the machine.</p>", 0, False)]),
    ("<p>How can I make a bootable USB stick from an ISO on Linux?</p>",
     [("<p>With <code>dd</code> (double-check the device name, it overwrites it):</p><pre><code>sudo dd "
       "if=image.iso of=/dev/sdX bs=4M status=progress conv=fsync\n</code></pre>", 3, True),
      ("<p>Copy the ISO file onto the stick.</p>", 0, False)]),
    ("<p>Why is my laptop fan always running?</p>",
     [("<p>Check what is using the CPU (Task Manager or <code>top</code>); a runaway process or browser tab "
       "is common. Then clean dust from the vents and make sure the laptop is on a hard surface.</p>",
       2, True),
      ("<p>Fans always run, ignore it.</p>", 0, False)]),
    ("<p>How do I see hidden files in macOS Finder?</p>",
     [("<p>Press <kbd>Cmd</kbd>+<kbd>Shift</kbd>+<kbd>.</kbd> in a Finder window to toggle hidden files."
       "</p>", 4, True),
      ("<p>You can't.</p>", -1, False)]),
    ("<p>How do I extract a <code>.tar.gz</code> file?</p>",
     [("<pre><code>tar -xzf archive.tar.gz\n</code></pre><p><code>x</code> extracts, <code>z</code> "
       "decompresses gzip, <code>f</code> names the file. Add <code>-C dir</code> to extract elsewhere.</p>",
       4, True),
      ("<p>Rename it to .zip.</p>", 0, False)]),
    ("<p>What is the difference between RAM and storage?</p>",
     [("<p>RAM is fast, temporary working memory that's cleared when the power goes off; storage (SSD or "
       "hard drive) keeps files permanently but is slower.</p>", 2, True),
      ("<p>RAM is fast, temporary working memory that's cleared when the power goes off; storage (SSD or "
       "hard drive) keeps files permanently but is slower.</p>", 1, False)]),  # identical texts
    ("<p>How do I take a screenshot of one window on Windows?</p>",
     [("<p>Click the window and press <kbd>Alt</kbd>+<kbd>PrtScn</kbd>; it goes to the clipboard. Or use "
       "<kbd>Win</kbd>+<kbd>Shift</kbd>+<kbd>S</kbd> and choose window mode.</p>", 3, True),
      ("<p>Use your phone camera.</p>", 0, False)]),
    ("<p>How can I check my disk usage by folder from the command line?</p>",
     [("<pre><code>du -h --max-depth=1 | sort -h\n</code></pre><p>Or install <code>ncdu</code> for an "
       "interactive view.</p>", 3, True),
      ("<p><code>ls</code></p>", 0, False),
      ("<p>Open every folder and look.</p>", 0, False)]),
]

STACKOVERFLOW: list[Question] = [
    ("<p>How do I reverse a list in Python?</p>",
     [("<p>Three common ways:</p><pre><code>xs.reverse()          # in place\nys = xs[::-1]         # new "
       "list\nfor x in reversed(xs):  # iterator\n    ...\n</code></pre>", 5, True),
      ("<p>Write a loop that swaps elements.</p>", 1, False),
      ("<p><code>xs.sort(reverse=True)</code></p>", -1, False)]),
    ("<p>What is the difference between <code>==</code> and <code>===</code> in JavaScript?</p>",
     [("<p><code>===</code> compares without type conversion; <code>==</code> converts the operands first, "
       "so <code>0 == &quot;0&quot;</code> is <code>true</code> but <code>0 === &quot;0&quot;</code> is "
       "<code>false</code>. Prefer <code>===</code>.</p>", 5, True),
      ("<p>They're the same, <code>===</code> is just newer.</p>", -1, False)]),
    ("<p>How do I read a file line by line in Python?</p>",
     [("<pre><code>with open(&quot;data.txt&quot;, encoding=&quot;utf-8&quot;) as f:\n    for line in f:\n"
       "        print(line.rstrip(&quot;\\n&quot;))\n</code></pre><p>The <code>with</code> block closes the "
       "file, and iterating the file object reads one line at a time.</p>", 4, True),
      ("<p><code>open('data.txt').read()</code></p>", 1, False)]),
    ("<p>How do I undo the last git commit but keep the changes?</p>",
     [("<pre><code>git reset --soft HEAD~1\n</code></pre><p>The commit is removed and its changes stay "
       "staged. Don't do this on commits you've already pushed to a shared branch.</p>", 5, True),
      ("<pre><code>git reset --hard HEAD~1\n</code></pre>", 0, False)]),
    ("<p>Why does <code>0.1 + 0.2 != 0.3</code> in most languages?</p>",
     [("<p>Binary floating point can't represent 0.1 or 0.2 exactly, so the sum is "
       "<code>0.30000000000000004</code>. Compare with a tolerance (e.g. <code>math.isclose</code>) or use "
       "decimal types for money.</p>", 5, True),
      ("<p>It's a bug in the CPU.</p>", -1, False)]),
    ("<p>How do I check if a key exists in a Python dict?</p>",
     [("<p>Use <code>in</code>: <code>if key in d:</code>. Use <code>d.get(key, default)</code> if you "
       "also want the value.</p>", 4, True),
      ("<p>Wrap <code>d[key]</code> in try/except every time.</p>", 1, False)]),
    ("<p>How do I convert a string to an integer in Java?</p>",
     [("<p><code>int n = Integer.parseInt(&quot;42&quot;);</code> &mdash; it throws "
       "<code>NumberFormatException</code> for invalid input, so catch that if the string comes from a "
       "user.</p>", 4, True),
      ("<p>Cast it: <code>(int) &quot;42&quot;</code></p>", -1, False)]),
    ("<p>What does <code>if __name__ == &quot;__main__&quot;:</code> do?</p>",
     [("<p>The block runs only when the file is executed as a script, not when it's imported as a module, "
       "because <code>__name__</code> is <code>&quot;__main__&quot;</code> only for the script being "
       "run.</p>", 5, True),
      ("<p>It's required in every Python file.</p>", 0, False)]),
    ("<p>How do I remove duplicates from a list while keeping order in Python?</p>",
     [("<pre><code>list(dict.fromkeys(items))\n</code></pre><p>Dicts keep insertion order (Python "
       "3.7+), so this keeps the first occurrence of each item.</p>", 4, True),
      ("<pre><code>list(set(items))\n</code></pre><p>(loses the order)</p>", 2, False)]),
    ("<p>How do I select rows in SQL where a column is NULL?</p>",
     [("<pre><code>SELECT * FROM t WHERE col IS NULL;\n</code></pre><p><code>col = NULL</code> never "
       "matches, because comparisons with NULL are unknown.</p>", 4, True),
      ("<pre><code>SELECT * FROM t WHERE col = NULL;\n</code></pre>", -1, False)]),
    ("<p>How do I make an HTTP GET request in Python?</p>",
     [("<pre><code>import requests\nr = requests.get(&quot;https://example.com&quot;, timeout=10)\n"
       "r.raise_for_status()\nprint(r.text)\n</code></pre><p>Or <code>urllib.request</code> from the standard "
       "library.</p>", 3, True),
      ("<p>Use <code>os.system('curl ...')</code>.</p>", 0, False)]),
    ("<p>What is a segmentation fault?</p>",
     [("<p>The program tried to access memory it isn't allowed to, e.g. dereferencing a null or dangling "
       "pointer or writing past the end of an array. Run it under a debugger or AddressSanitizer to find "
       "where.</p>", 3, True),
      ("<p>Your computer is out of memory.</p>", 0, False)]),
]

ENGLISH: list[Question] = [
    ("<p>When should I use &quot;fewer&quot; instead of &quot;less&quot;?</p>",
     [("<p>Traditionally, <em>fewer</em> goes with countable nouns (<em>fewer cups</em>) and <em>less</em> "
       "with uncountable ones (<em>less water</em>). <em>Less</em> is also standard with numbers as amounts "
       "(<em>less than 10 miles</em>).</p>", 4, True),
      ("<p>They're interchangeable.</p>", 0, False)]),
    ("<p>Is it &quot;between you and I&quot; or &quot;between you and me&quot;?</p>",
     [("<p><em>Between you and me</em>: <em>between</em> is a preposition, so it takes the object pronoun "
       "<em>me</em>.</p>", 4, True),
      ("<p><em>I</em> sounds more polite, so use that.</p>", -1, False)]),
    ("<p>What is the difference between &quot;its&quot; and &quot;it's&quot;?</p>",
     [("<p><em>It's</em> is a contraction of <em>it is</em> or <em>it has</em>; <em>its</em> is the "
       "possessive (<em>the dog wagged its tail</em>).</p>", 4, True),
      ("<p>Both are possessive.</p>", 0, False)]),
    ("<p>Can a sentence start with &quot;because&quot;?</p>",
     [("<p>Yes, as long as the clause is complete: <em>Because it rained, the match was cancelled.</em> "
       "The rule against it is a classroom simplification.</p>", 3, True),
      ("<p>Never.</p>", 0, False)]),
    ("<p>What is a dangling modifier?</p>",
     [("<p>A modifier whose intended subject is missing, so it attaches to the wrong thing: "
       "<em>Walking to school, the rain started.</em> (The rain wasn't walking.) Fix: <em>Walking to "
       "school, I got caught in the rain.</em></p>", 3, True),
      ("<p>A word at the end of a sentence.</p>", 0, False)]),
    ("<p>Should I write &quot;alright&quot; or &quot;all right&quot;?</p>",
     [("<p>Both appear, but <em>all right</em> is the safer choice in formal writing; <em>alright</em> is "
       "common informally.</p>", 1, False),
      ("<p>Either is fine in casual text; prefer <em>all right</em> in formal writing.</p>", 1, False)]),
]

SITES: dict[str, list[Question]] = {
    "cooking.stackexchange.com": COOKING,
    "english.stackexchange.com": ENGLISH,
    "math.stackexchange.com": MATH,
    "stackoverflow.com": STACKOVERFLOW,
    "superuser.com": SUPERUSER,
}
