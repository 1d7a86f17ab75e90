"""Every control of the app declared once: key, widget, label, choices and bounds.

Choices come from the core's constants (rankings, regularizers, defenses, directions, presets),
so a new ranking or defense shows up without touching a page. Pages only place a control
(`draw`); the link (`first_value`, `publish`), `?hide=` and a preset reset (`reset_keys`) read
this same table, so a control's link name, its valid values and its widget cannot disagree.
Link names and values are those of earlier versions: every shared link still opens the same view.
Every control keeps its value for the whole session, across pages (`keep_values`), and the
marking (`MARKING`) is one set of keys that Salience maps and Purify both draw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import streamlit as st

from purify_core.views.attribution import ATTRIBUTIONS
from purify_core.config import ARCHITECTURES, DATASETS, MAX_SEED
from purify_core.defenses import DEFENSES
from purify_core.method.marking import DIRECTIONS, MAX_THRESHOLD, SCOPES
from purify_core.method.neurons import LAYER_PRESETS
from purify_core.method.purify import PRESET_LABELS, PURIFY_PRESETS, PurifyConfig, purify_preset
from purify_core.method.settings import MAX_ROTATE, MAX_SCALE
from purify_core.method.rankings import DEFENDER_METRICS, METRIC_LABELS, SALIENCE_VARIANTS
from purify_core.method.regularizers import REGULARIZERS
from purify_core.method.steps import CLASSIFIER_INITS, DISTILL_SCHEDULES, DISTILL_VIEWS, REINIT_CHOICES
from ui import links, state

#: Widgets whose values are a list of options (the rest take bounds).
_OPTION_WIDGETS = {"selectbox", "radio", "select_slider", "segmented_control"}


@dataclass(frozen=True)
class Control:
    """One control: how it is drawn, which values are valid (in a link too) and where its value goes.

    `of_preset` gives a purification control its value under a preset, `field`/`to_core` say
    which `PurifyConfig` field it sets and how. `linked=False`: not in links, not hideable.
    """

    key: str
    widget: str
    label: str
    default: Any = None
    parse: Callable[[str], Any] = str
    choices: Sequence[Any] | None = None
    bounds: tuple[float, float] | None = None
    step: float | None = None
    format: str | None = None
    format_func: Callable[[Any], str] | None = None
    help: str | None = None
    linked: bool = True
    of_preset: Callable[[PurifyConfig], Any] | None = None
    field: str | None = None
    to_core: Callable[[Any], Any] | None = None
    #: When it matters, given the values of the controls drawn before it (else it is drawn disabled).
    active: Callable[[dict[str, Any]], bool] | None = None
    #: Older link names still read for it (the address bar then gets `key` instead).
    aliases: tuple[str, ...] = ()

    def widget_args(self) -> dict[str, Any]:
        """The keyword arguments of its Streamlit widget."""
        args: dict[str, Any] = {}
        if self.widget in _OPTION_WIDGETS:
            args["options"] = list(self.choices or ())
        elif self.bounds is not None:
            args["min_value"], args["max_value"] = self.bounds
        if self.widget == "radio":
            args["horizontal"] = True
        extra = {"step": self.step, "format": self.format, "format_func": self.format_func, "help": self.help}
        return args | {name: value for name, value in extra.items() if value is not None}


def _kappa(text: str) -> str | float:
    """A kappa from a link: `auto` (2 x RMS per tensor) or a number."""
    return text if text == "auto" else float(text)


KAPPAS = ("auto", 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
LEARNING_RATES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)
TEMPERATURES = (0.5, 1.0, 2.0, 4.0, 8.0)
TOPS = (0.02, 0.05, 0.1, 0.2)
#: The purification threshold's bounds: what `PurifyConfig` and `marking.mark` accept.
THRESHOLD_BOUNDS = (0.0, MAX_THRESHOLD)

SEED = Control(state.SEED, "number_input", "Seed", 0, int, bounds=(0, MAX_SEED), step=1,
               help="Seeds the shuffling of new runs and the training of new models: same seed, same numbers.")

PURIFY_PRESET = Control(state.PURIFY_PRESET, "segmented_control", "Preset", "default", choices=tuple(PURIFY_PRESETS),
                        format_func=lambda p: f"{p}: {PRESET_LABELS.get(p, p)}",
                        help="Each preset resets the controls below. " + " ".join(f"{p}: {label}." for p, label in PRESET_LABELS.items()))
# The marking's threshold, direction and scope (and the layers below): one set of keys that Salience maps and Purify
# both draw, so what a student marks on one page is what the other shows and purifies. A Salience link's older
# names (salience_threshold, ...) are read as aliases.
PURIFY_MARKING = (
    Control(state.PURIFY_THRESHOLD, "slider", "Pruning threshold (share of neurons marked)", parse=float, bounds=THRESHOLD_BOUNDS,
            step=0.01, of_preset=lambda c: c.threshold, field="threshold", aliases=(state.SALIENCE_THRESHOLD,)),
    Control(state.PURIFY_DIRECTION, "radio", "Mark the", choices=DIRECTIONS, of_preset=lambda c: c.direction, field="direction",
            help="lowest benign salience is the paper's premise; on small nets the infected neurons are "
            "often the most salient (see Compare rankings).", aliases=(state.SALIENCE_DIRECTION,)),
    Control(state.PURIFY_SCOPE, "radio", "Scope", choices=SCOPES, of_preset=lambda c: c.scope, field="scope",
            help="layer: that share of each layer; global: of all layers pooled, scores scaled within each layer.",
            aliases=(state.SALIENCE_SCOPE,)),
)
PURIFY_LAYERS = Control(state.PURIFY_LAYERS, "selectbox", "Layers", choices=LAYER_PRESETS, field="layers",
                        of_preset=lambda c: c.layers if isinstance(c.layers, str) else "all",
                        help="last-conv: the last conv layer (where Fine-Pruning prunes); final-linear: the last hidden units.")
PURIFY_PENALTY = (
    PURIFY_LAYERS,
    Control(state.PURIFY_REGULARIZER, "selectbox", "Regularizer", choices=REGULARIZERS, of_preset=lambda c: c.regularizer,
            field="regularizer", help="ar: Adaptive Regularization; prune: zero the marked neurons and keep them at zero; none: plain fine-tuning."),
    Control(state.PURIFY_STRENGTH, "number_input", "Strength (lambda)", parse=float, bounds=(0.0, 10.0), step=0.01, format="%.3f",
            of_preset=lambda c: c.strength, field="strength"),
    Control(state.PURIFY_KAPPA, "select_slider", "AR knee (kappa)", parse=_kappa, choices=KAPPAS, field="kappa",
            of_preset=lambda c: "auto" if c.kappa is None else c.kappa, to_core=lambda v: None if v == "auto" else float(v),
            active=lambda values: values[state.PURIFY_REGULARIZER] == "ar",
            help="Where AR turns from L1 into its exponential pull. auto: 2 x the RMS of each weight tensor, "
            "so the knee follows each layer's scale; 1.0 is the authors' fixed value."),
)
PURIFY_TRAINING = (
    Control(state.PURIFY_EPOCHS, "slider", "Epochs", parse=int, bounds=(1, 60), of_preset=lambda c: c.epochs, field="epochs"),
    Control(state.PURIFY_LR, "select_slider", "Learning rate", parse=float, choices=LEARNING_RATES, of_preset=lambda c: c.lr, field="lr"),
    Control(state.PURIFY_REINIT, "radio", "Re-initialise", choices=REINIT_CHOICES, field="reinit",
            of_preset=lambda c: c.reinit if c.reinit in REINIT_CHOICES else "none",
            help="Before fine-tuning, draw fresh weights (PyTorch's default init) for: dense: every linear layer "
            "(the hidden one and the classifier); marked: only the marked neurons; none: keep all weights."),
    Control(state.PURIFY_CLASSIFIER_INIT, "radio", "Classifier init", choices=CLASSIFIER_INITS, field="classifier_init",
            of_preset=lambda c: c.classifier_init, active=lambda values: values[state.PURIFY_REINIT] == "dense",
            help="default: the re-initialised classifier gets PyTorch's random draw; zero: it starts at zero, so every "
            "class starts equal (the layers under it keep their random draw)."),
    Control(state.PURIFY_DISTILL, "slider", "Distillation weight", parse=float, bounds=(0.0, 1.0), step=0.05, field="distill",
            of_preset=lambda c: float(c.distill), to_core=float,
            help="Loss = (1 - w) x task loss + w x T^2 x KL to the original model's answers on the same clean images. "
            "0: no distillation."),
    Control(state.PURIFY_TEMPERATURE, "select_slider", "Distillation temperature", parse=float, choices=TEMPERATURES,
            field="temperature", to_core=float, active=lambda values: values[state.PURIFY_DISTILL] != 0,
            of_preset=lambda c: float(c.temperature) if c.temperature in TEMPERATURES else 2.0),
    Control(state.PURIFY_DISTILL_SCHEDULE, "radio", "Distillation schedule", choices=DISTILL_SCHEDULES, field="distill_schedule",
            of_preset=lambda c: c.distill_schedule, active=lambda values: values[state.PURIFY_DISTILL] != 0,
            help="constant: w throughout; linear: w falls to 0 by the last step."),
    Control(state.PURIFY_DISTILL_VIEW, "radio", "Distillation view", choices=DISTILL_VIEWS, field="distill_view",
            of_preset=lambda c: c.distill_view, active=lambda values: values[state.PURIFY_DISTILL] != 0,
            help="The original model's answers on: shifted: the step's own shifted images; clean: each image as it is "
            "(a shift is a small warp, and a warp can be a trigger); both: the mean of the two."),
    Control(state.PURIFY_ROTATE, "slider", "Turn the images by up to (degrees)", parse=float, bounds=(0.0, MAX_ROTATE), step=1.0, format="%.0f",
            field="rotate", of_preset=lambda c: float(c.rotate), to_core=float,
            help="Each fine-tuning image is also turned by its own random angle up to this, for the model being purified "
            "only: the original model (distillation) answers the image unturned, because a turn is a warp and a warp can "
            "be a trigger. 0: no turning."),
    Control(state.PURIFY_SCALE, "slider", "Scale the images by up to (a fraction)", parse=float, bounds=(0.0, MAX_SCALE), step=0.05, format="%.2f",
            field="scale", of_preset=lambda c: float(c.scale), to_core=float,
            help="Each fine-tuning image is also scaled by its own random factor in [1 - s, 1 + s], for the model being "
            "purified only (as the turn). 0: no scaling."),
)
PURIFY = PURIFY_MARKING + PURIFY_PENALTY + PURIFY_TRAINING
#: The marking, shared by Salience maps and Purify: threshold, direction, scope and layers.
MARKING = (*PURIFY_MARKING, PURIFY_LAYERS)
PURIFY_DEFENSE = Control(state.PURIFY_DEFENSE, "selectbox", "Defense", "finetune", choices=DEFENSES.keys(),  # a live view of the registry
                         format_func=lambda d: DEFENSES[d].label if d in DEFENSES else d,
                         help="Every registered defense, on the same model, clean set and evaluation. "
                         + " ".join(f"{d.label}: {d.summary}." for d in DEFENSES.values()))
#: A defense setting's widget (and link) key: `defense_<defense>_<setting>`, e.g. `defense_fine-pruning_margin`.
DEFENSE_SETTING_PREFIX = "defense_"


def defense_setting_keys(defense: str) -> dict[str, str]:
    """The widget and link key of each of the defense's settings."""
    return {name: f"{DEFENSE_SETTING_PREFIX}{defense}_{name}" for name in DEFENSES[defense].params}

SALIENCE_RANKING = (
    Control(state.SALIENCE_METRIC, "selectbox", "Ranking", "salience", choices=DEFENDER_METRICS, format_func=METRIC_LABELS.get),
    Control(state.SALIENCE_VARIANT, "radio", "Salience variant", "abs", choices=SALIENCE_VARIANTS,
            active=lambda values: values[state.SALIENCE_METRIC] == "salience",
            help="abs: mean |t_k| over batches; squared: mean t_k^2; ema-signed: the authors' code."),
)
SALIENCE = (*SALIENCE_RANKING, *MARKING)

COMPARE_TOP = Control(state.COMPARE_TOP, "select_slider", "Infected = TAC top share per layer", 0.05, float, choices=TOPS,
                      format_func=lambda v: f"{v:.0%}")
COMPARE_DIRECTION = Control(state.COMPARE_DIRECTION, "radio", "Read a ranking as", "lowest", choices=DIRECTIONS,
                            format_func=lambda d: f"{d} score = infected", help="The paper's premise is lowest. On small nets the "
                            "infected neurons are often the most active and salient ones: see which reading TAC supports here.")
COMPARE = (COMPARE_TOP, COMPARE_DIRECTION)

EXPLAIN_METHOD = Control(state.EXPLAIN_METHOD, "selectbox", "Method", ATTRIBUTIONS[0], choices=ATTRIBUTIONS,
                         help="Integrated Gradients and Saliency: pixel gradients; Grad-CAM: the last conv layer's view, upsampled.")
EXPLAIN = (EXPLAIN_METHOD,)

#: What each dataset is, in the Attack lab's words (a dataset missing here shows by its name).
DATASET_LABELS = {"mnist5k": "MNIST, 5,000 real digits (shipped)", "digits": "8x8 digits (shipped, trains in seconds)",
                  "cifar10": "CIFAR-10 (server folder)", "gtsrb": "GTSRB (server folder)", "imagefolder": "ImageFolder (server folder)"}
ATTACK_DATASET = Control(state.ATTACK_DATASET, "selectbox", "Dataset", choices=DATASETS, linked=False,
                         format_func=lambda d: DATASET_LABELS.get(d, d))
ATTACK_ARCH = Control(state.ATTACK_ARCH, "selectbox", "Architecture", choices=ARCHITECTURES, linked=False,
                      help="smallcnn suits MNIST-sized data; smallvgg and preactresnet18 suit 32x32 colour images.")
ATTACK_RATE = Control(state.ATTACK_RATE, "slider", "Poison rate", bounds=(0.01, 0.5), step=0.01, linked=False,
                      help="Share of the training set that carries the trigger (clean-label attacks can only use target-class images).")
ATTACK_EPOCHS = Control(state.ATTACK_EPOCHS, "number_input", "Epochs", bounds=(1, 100), linked=False)
ATTACK_LR = Control(state.ATTACK_LR, "select_slider", "Learning rate", choices=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2), linked=False)

#: Every control a link can set: a link's query parameter is a key of this table.
LINKED: dict[str, Control] = {c.key: c for c in (SEED, PURIFY_PRESET, *PURIFY, PURIFY_DEFENSE, *SALIENCE_RANKING, *COMPARE,
                                                   *EXPLAIN)}
BY_KEY: dict[str, Control] = LINKED | {c.key: c for c in (ATTACK_DATASET, ATTACK_ARCH, ATTACK_RATE, ATTACK_EPOCHS,
                                                           ATTACK_LR)}
#: Widgets that pages draw themselves and whose values are kept across pages too (never a button, an
#: uploader, or a widget given a `value=`/`index=`: those cannot, or should not, be set from session state).
KEPT_WIDGETS = (state.ATTACK_ROOT, state.ATTACK_NAME, state.ATTACK_TARGET, state.SALIENCE_LAYER, state.COMPARE_CURVES)
#: Keys of the widgets drawn per attack or defense setting (`widgets.param_input`).
KEPT_PREFIXES = (DEFENSE_SETTING_PREFIX, state.ATTACK_PARAM_PREFIX)


def is_kept(key: str) -> bool:
    """Whether a session key is a control whose value is kept across pages."""
    return key in BY_KEY or key in KEPT_WIDGETS or key.startswith(KEPT_PREFIXES)


def keep_values() -> None:
    """Keep every control's value for the whole session, across pages; the sidebar calls it first in every run.

    A link opened on purpose (`links.go`, a lesson step's "Go to") is applied first, so it wins over kept values.
    """
    follow(links.opened())
    links.keep(is_kept)


def _by_link_name(name: str) -> Control | None:
    """The linked control a link's query name stands for: its own name, else an older one (alias)."""
    return LINKED.get(name) or next((c for c in LINKED.values() if name in c.aliases), None)


def follow(query: dict[str, str]) -> None:
    """Apply a link opened on purpose over the session's values; call it before any widget is drawn.

    Every control the link names takes the link's value, whatever the student had set; the others
    keep theirs. A link that names the preset also resets the purification controls it does not name
    to that preset's values, as choosing the preset does, so the page shows the view the link names.
    `hide` becomes the link's (nothing hidden when it names none); a model it names opens on this run.
    A value that is not valid here is ignored with a warning, as in any link.
    """
    if not query:
        return
    values: dict[str, Any] = {}
    for name, raw in query.items():
        control = _by_link_name(name)
        if control is None:
            continue
        value = links.from_link(raw, control.parse, control.choices, control.bounds)
        if value is None:
            st.warning(links.ignored(name, raw, links.current(control.key)))
        else:
            values[control.key] = value
    if PURIFY_PRESET.key in values:
        links.forget([key for key in reset_keys() if key not in values])
    for key, value in values.items():
        st.session_state[key] = value
    links.set_hidden(query.get(links.HIDE, ""))
    if state.SCENARIO in query:
        st.session_state[state.PENDING_SCENARIO] = query[state.SCENARIO]  # the sidebar checks the server has it


def first_value(control: Control, preset: PurifyConfig | None = None) -> None:
    """Give a linked control its first value: the link's if valid, else its default (or its preset's value)."""
    default = control.of_preset(preset) if control.of_preset is not None and preset is not None else control.default
    links.initial_value(control.key, default, control.parse, control.choices, control.bounds, control.aliases)


def first_values(controls: Sequence[Control], preset: PurifyConfig | None = None) -> None:
    """`first_value` for each control of a page, before any is drawn."""
    for control in controls:
        first_value(control, preset)


def draw(where: Any, control: Control, **extra: Any) -> Any:
    """Place the control's widget in `where` (`st`, a column, the sidebar) and return its value.

    A linked control takes its value from session state (see `first_value`) and is not drawn when
    the link hides it; `extra` holds what depends on the page (`disabled`, `on_change`).
    """
    if control.linked:
        return links.control(where, control.widget, control.label, control.key, control.aliases, **control.widget_args(), **extra)
    return links.remember(control.key, getattr(where, control.widget)(control.label, key=control.key, **control.widget_args(), **extra))


def draw_in(*placed: tuple[Any, Sequence[Control]]) -> dict[str, Any]:
    """Draw each group of controls in its place (a column), in order; their values by key.

    A control with `active` is disabled when the values drawn before it make it moot.
    """
    values: dict[str, Any] = {}
    for where, group in placed:
        for control in group:
            extra = {} if control.active is None else {"disabled": not control.active(values)}
            values[control.key] = draw(where, control, **extra)
    return values


def publish(controls: Sequence[Control]) -> None:
    """Write these controls' current values to the link (under their own names: older aliases leave it)."""
    links.publish([c.key for c in controls], [alias for c in controls for alias in c.aliases])


def reset_keys(controls: Sequence[Control] = PURIFY) -> list[str]:
    """The keys (and older link names) a preset resets: forgetting them makes each take the new preset's value."""
    return [name for c in controls for name in (c.key, *c.aliases)]


def draw_preset(where: Any) -> str:
    """Place the preset picker; choosing a preset resets every purification control to its value.

    Returns the preset's name, after giving each control its first value (link, else the preset's).
    """
    first_value(PURIFY_PRESET)
    preset = draw(where, PURIFY_PRESET, on_change=links.forget, args=(reset_keys(),)) or PURIFY_PRESET.default
    first_values(PURIFY, PURIFY_PRESETS[preset])
    return preset


def chosen_preset() -> str:
    """The purification preset (its first value if Purify has not drawn it yet): a page without the picker reads it here."""
    first_value(PURIFY_PRESET)
    return links.current(PURIFY_PRESET.key) or PURIFY_PRESET.default


def first_marking() -> str:
    """Give the shared marking its first values on a page without the preset picker; the preset's name.

    Kept or linked values come first, else the chosen preset's, so a page shows the marking Purify would use.
    """
    preset = chosen_preset()
    first_values(MARKING, PURIFY_PRESETS[preset])
    return preset


def purify_config(preset: str, values: dict[str, Any], seed: int) -> PurifyConfig:
    """The run's settings: the preset with every purification control's value (`values` by key) put in."""
    overrides = {c.field: (c.to_core or (lambda v: v))(values[c.key]) for c in PURIFY if c.field is not None}
    return purify_preset(preset, **overrides, seed=seed)
