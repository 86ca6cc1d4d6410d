"""The public verbs behind `import edgeprune as ep`: typed results, models in, models out.

One module per concern: `transforms` (prune, prune_channels, xnnpack_fix), `models`
(convert, inspect, evaluate), `fleet` (deploy, bench, compare), `recipes`, and `results`
(what every verb returns). Import the verbs from `edgeprune`, not from here.
"""
