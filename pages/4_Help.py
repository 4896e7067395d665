"""Help: what the map and the similarity mean, what the model sees, the caveats, and the data's credits."""

from __future__ import annotations

import streamlit as st

from explorer.widgets import frame
from pretrain import config

frame.require_app()

FIELD_ARCMIN = config.MODEL_INPUT_PX * config.FIRST_PIXEL_SCALE_ARCSEC / 60.0
STORED_ARCMIN = config.IMAGE_FIELD_ARCSEC / 60.0

st.markdown("#### Help · reading the explorer")

st.markdown(
    f"""
##### The map
Each point is one radio source. A self-supervised network (BYOL, ResNet-18) turned each
FIRST image into a vector of numbers, its *representation* (512 with the shipped backbone; the
line above the map gives the open space's size); PCA to at most {config.MAP_PCA_COMPONENTS}
dimensions, then UMAP, laid those out in two dimensions so that sources the model finds alike sit close
together. **The axes mean nothing physical**, and distances between far-apart clusters mean
little: UMAP keeps neighbourhoods, not global geometry. The published map is ordered mostly by
angular extent, so colour by it first.

##### The similarity
"Nearest neighbours" are ranked by the **cosine similarity of the full representations** (512-d
from the shipped backbone; another backbone or your own vectors have their own size), not by
distance on the map (the map is a flattened picture of that space). A cosine of 1 is identical in
the model's eyes. A catalogue-only space (the published RGZ DR1 map) has no representations:
there, neighbours are the nearest points on its 2-D map. The source panel's *map trust* says
how many of a source's nearest neighbours in the representation are also nearest on the map:
where it is low, trust the neighbour list over the picture.

The sidebar's **Similar by** offers a second ranking: the representation with two of the
source's pixel measurements appended, its angular extent (log) and FR ratio, each
standardised over the space (`pretrain/measured_neighbours.py`). Its neighbours share the
query's FR class more often on MiraBest (BENCHMARKS.md); the map stays the representation's,
and a looked-up image is measured from its cutout in the same way. Its similarities are
lower than the plain cosines (the representation is standardised first); the percentile
beside each is the figure to compare.

##### What the model sees
- **Field of view:** the central {config.MODEL_INPUT_PX} × {config.MODEL_INPUT_PX} pixels at
  {config.FIRST_PIXEL_SCALE_ARCSEC}″/px = **{FIELD_ARCMIN:.1f}′** (the box drawn on the panel's
  image; the stored image is {config.IMAGE_SIZE_PX} px = {STORED_ARCMIN:.1f}′).
- **Resolution:** the FIRST survey's **{config.FIRST_BEAM_ARCSEC:g}″ beam** at 1.4 GHz.
  Emission below {config.CLIP_SIGMA:g}σ of the noise is set to zero before the model sees it.

##### Caveats
- **Another survey's beam.** The model learnt FIRST's {config.FIRST_BEAM_ARCSEC:g}″ beam. An image
  from a survey with another resolution (NVSS's 45″, VLASS's 2.5″, LOFAR's 6″ at 144 MHz) is
  regridded to FIRST's pixels, but its structures look different to the model: compare within
  one survey.
- **Sources larger than the field.** A source much larger than {FIELD_ARCMIN:.1f}′ shows the model
  only its core or one lobe; its neighbours are then sources with a similar *part*. The outlier
  ranking collects many of these.
- **Orientation averaging.** Position angle on the sky carries no morphological meaning, so each
  representation is the average over the image's 8 turns by 90° and mirror images (where the
  space says so), or, with a backbone of group convolutions over them (`pretrain train
  --symmetry d4`), the same for all 8 by construction: a source and its rotated copy are
  neighbours, and a list says nothing about orientation.
- **Labels are not truth.** MiraBest classes are expert labels with Confident / Uncertain flags;
  *label purity* in the panel counts agreement with them, no more.

##### Links and hand-off
Every source links to NED, SIMBAD, the FIRST catalogue, NVSS and VLASS cutouts and the Legacy
Survey and SDSS viewers, by its position (a new tab each). Neighbour lists, selections and tag
sets download as CSV or **VOTable** (positions with UCDs, scores, labels, and the backbone's
SHA-256 and the space as provenance), or go straight to **TOPCAT / Aladin** over SAMP (start
one of them first: each runs a SAMP hub). Tags are kept on this machine, per space.

##### Data and credits
- **VLA FIRST** (Becker, White & Helfand 1995): the images, as served by NASA SkyView.
- **MiraBest** (Porter & Scaife 2023, doi:10.5281/zenodo.4288837; built from Miraghaei & Best
  2017): the labelled default space. Licence **CC BY 4.0**: cite the MiraBest paper.
- **Griese et al. (2023)**, *A radio galaxy dataset for machine learning* (Data in Brief 47,
  108974): FRI / FRII / Compact / Bent images.
- **FRDEEP** (Tang et al.): FRI / FRII sources in FIRST and NVSS.
- **Radio Galaxy Zoo DR1 map** of **Slijepcevic et al. (2024)**, *Radio Galaxy Zoo: towards
  building the first multi-purpose foundation model for radio astronomy with self-supervised
  learning*: the published latent map, and the method this explorer follows.
- NVSS (Condon et al. 1998) and VLASS (Lacy et al. 2020; NRAO) for the cutout links.
"""
)
