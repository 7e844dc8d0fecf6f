"""Neural style transfer (Gatys, Ecker and Bethge 2015) as the course teaches it.

- `costs`: content cost, Gram-matrix style cost, total cost, total variation, with the course's normalisations
  and the original paper's as a named alternative;
- `features`: named-layer activations of any zoo backbone with the preprocessing that network expects;
- `transfer`: the optimisation of the generated image's pixels (Adam or L-BFGS, multi-scale, colour
  preservation, several styles);
- `styles`: style images generated offline (brush strokes along a flow field, scikit-image textures).
"""
