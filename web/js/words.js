// The read-back word list, identical to rsb_protocol.readback.WORDS (index = one byte).
// tests/unit/test_web_words.py holds the two lists equal: a difference would make customer and
// engineer read different words for the same keys.

export const WORDS = Object.freeze([
  "acorn", "actor", "album", "amber", "anchor", "ankle", "anvil", "apple", "apron", "arrow",
  "atlas", "attic", "award", "bacon", "badge", "bagel", "bamboo", "banjo", "barrel", "basket",
  "beach", "beaver", "beetle", "bench", "biscuit", "bishop", "blanket", "blossom", "bottle",
  "bridge", "bucket", "button", "cabin", "cactus", "camel", "canal", "candle", "canyon", "carpet",
  "castle", "cello", "cherry", "chess", "circle", "clover", "cobra", "comet", "copper", "cotton",
  "crayon", "cricket", "crown", "crystal", "daisy", "dancer", "denim", "desert", "diamond",
  "dinner", "doctor", "dolphin", "donkey", "dragon", "drum", "duck", "dune", "eagle", "easel",
  "echo", "elbow", "ember", "engine", "falcon", "feather", "fence", "fiddle", "finger", "flame",
  "flute", "forest", "fossil", "fox", "fridge", "frog", "galaxy", "garden", "garlic", "geyser",
  "giant", "ginger", "giraffe", "glacier", "globe", "glove", "goat", "gopher", "gravel", "guitar",
  "hammer", "hammock", "harbor", "harvest", "helmet", "hermit", "hippo", "honey", "hornet",
  "hotel", "husky", "iceberg", "igloo", "index", "island", "ivory", "jacket", "jaguar", "jasmine",
  "jelly", "jersey", "jewel", "jigsaw", "jockey", "juice", "jungle", "kayak", "kernel", "kettle",
  "kidney", "kitten", "koala", "ladder", "lagoon", "lantern", "laptop", "lava", "lemon", "leopard",
  "lettuce", "lily", "lizard", "lobster", "lotus", "magnet", "mango", "maple", "marble", "meadow",
  "melon", "mirror", "monkey", "mosaic", "muffin", "museum", "mustard", "napkin", "nectar",
  "needle", "nomad", "noodle", "nugget", "nutmeg", "oasis", "ocean", "office", "olive", "onion",
  "orange", "orbit", "orchid", "otter", "oyster", "paddle", "panda", "parrot", "peanut", "pebble",
  "pencil", "pepper", "piano", "pickle", "pillow", "pilot", "pirate", "planet", "potato", "prism",
  "pumpkin", "puppet", "puzzle", "quartz", "quilt", "quiver", "rabbit", "radio", "raft", "raisin",
  "raven", "rhubarb", "ribbon", "robot", "rocket", "ruby", "saddle", "salmon", "sandal", "satin",
  "scarf", "shadow", "shovel", "silver", "skate", "spider", "spinach", "sponge", "squid", "statue",
  "sugar", "summit", "sunset", "tablet", "tango", "teapot", "temple", "tennis", "thimble", "tiger",
  "tomato", "tractor", "trumpet", "tulip", "tundra", "tunnel", "turtle", "tuxedo", "umpire",
  "unicorn", "urchin", "valley", "velvet", "violin", "volcano", "voyage", "waffle", "wagon",
  "walnut", "wheat", "whistle", "window", "wizard", "wolf", "wombat", "yacht", "yarn", "yogurt",
  "zebra", "zipper",
]);
