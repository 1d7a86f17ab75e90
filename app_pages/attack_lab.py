"""Attack lab: implant a backdoor (data, model, trigger, poison rate, target) or bring your own weights."""

import time

import streamlit as st

from purify_core.attacks import ATTACKS, build_attack
from purify_core.config import AttackConfig, DataConfig, ModelConfig, Scenario, TrainConfig, scenario_preset
from purify_core.data.splits import one_per_class
from purify_core.errors import UserInputError
from purify_core.views.image_figures import trigger_preview_figure
from purify_core.store.uploads import WEIGHT_SUFFIXES, import_weights
from purify_core.store.model_store import key_for, load_or_train
from ui import controls, state, untrusted
from ui.cache import built_cards, dataset_splits, shipped_cards
from ui.estimates import seconds_text, time_left, training_estimate
from ui.card import show_card
from ui.jobs import heavy_job
from ui.remote_jobs import job_steps
from ui.server import MAX_UPLOAD_MB, data_folders
from ui.sidebar import current_device, current_seed, open_on_next_run
from ui.upload import forget_made, upload_scenario
from ui.widgets import attack_params

st.title("Attack lab")
st.markdown("Implant a backdoor yourself: choose the data, the model and the trigger, then train; or upload weights you "
            "trained elsewhere. Either way the new model's card opens at the top of this page and every other page works on it.")

FOLDER_DATASETS = ("cifar10", "gtsrb", "imagefolder")

made = st.session_state.get(state.ATTACK_MADE)
if made:
    with st.container(border=True):
        st.success(f"{untrusted.code(made)} is ready and selected in the sidebar: every page now works on it.", icon=":material/check_circle:")
        try:
            show_card(made, key="made")
        except UserInputError as error:  # its cached file went away or changed since
            st.error(f"Cannot open {untrusted.code(made)}: {untrusted.text(error)}")
        st.page_link("app_pages/salience.py", label="Next: find where its backdoor lives (Salience maps)", icon=":material/arrow_forward:")

st.subheader("1. Data and model")
c1, c2, c3 = st.columns(3)
dataset = controls.draw(c1, controls.ATTACK_DATASET)
root = None
if dataset in FOLDER_DATASETS:
    folders = [str(f) for f in data_folders()]
    if folders and st.session_state.get(state.ATTACK_ROOT) not in folders:
        st.session_state[state.ATTACK_ROOT] = folders[0]  # e.g. the first folder appeared since the last run
    root = c2.selectbox("Folder on the server", folders, key=state.ATTACK_ROOT,
                        format_func=lambda p: p.rsplit("/", 1)[-1],
                        help="Subfolders of $PURIFY_LAB_DATA on the server; a browser never names other server paths.")
    if root is None:
        st.info("This server has no dataset folders yet: put a CIFAR-10, GTSRB or ImageFolder tree under the folder "
                "`$PURIFY_LAB_DATA` names (default `~/.cache/purify_lab/data`), or use the CLI with `--data-root`.")
        st.stop()
arch = controls.draw(c3, controls.ATTACK_ARCH)
preset_name = "tiny" if dataset == "digits" else "demo"
preset = scenario_preset(preset_name)
data = preset.data if dataset in ("mnist5k", "digits") else DataConfig(dataset, root=root)
try:
    splits = dataset_splits(data)
except UserInputError as error:
    st.error(untrusted.text(error))
    st.stop()
st.caption(f"{len(splits.train)} training, {len(splits.clean)} clean defense and {len(splits.test)} test images of "
           f"{'x'.join(map(str, splits.input_shape))}, {splits.num_classes} classes.")

st.subheader("2. Attack")
a1, a2 = st.columns([1, 2])
attack_name = a1.selectbox("Attack", list(ATTACKS), key=state.ATTACK_NAME, format_func=lambda n: f"{n}: {ATTACKS[n].summary}")
target = a1.selectbox("Target class", range(splits.num_classes), key=state.ATTACK_TARGET, format_func=lambda i: splits.classes[i])
st.session_state.setdefault(state.ATTACK_RATE, 0.08 if ATTACKS[attack_name].clean_label else 0.1)
rate = controls.draw(a1, controls.ATTACK_RATE)
params = attack_params(a2.columns(2), ATTACKS[attack_name], preset_name)
try:
    attack_config = AttackConfig.of(attack_name, int(target), float(rate), **params)
    attack = build_attack(attack_config, splits.input_shape, splits.num_classes)
    sample = one_per_class(splits.clean, 5)
    a2.plotly_chart(trigger_preview_figure(attack.render_trigger(), sample, attack.apply(sample), untrusted.plot(splits.classes[int(target)])),
                    key="attack_preview", config={"displayModeBar": False})
    a2.caption("Live preview: the trigger alone, then clean defense images (one per class) above the same images as the attack poisons "
               "them (relabelled to the target unless the attack is clean-label).")
    problem = None
except UserInputError as error:
    problem = str(error)
    a2.error(untrusted.text(problem))

st.subheader("3. Train, or upload weights")
train_tab, upload_tab = st.tabs(["Train here", "Upload weights"])
with train_tab:
    t1, t2, t3 = st.columns([1, 1, 1], vertical_alignment="bottom")
    st.session_state.setdefault(state.ATTACK_EPOCHS, preset.train.epochs)
    epochs = controls.draw(t1, controls.ATTACK_EPOCHS)
    st.session_state.setdefault(state.ATTACK_LR, preset.train.lr)
    lr = controls.draw(t2, controls.ATTACK_LR)
    train = TrainConfig(epochs=int(epochs), batch_size=preset.train.batch_size, lr=float(lr))
    scenario = Scenario(data=data, model=ModelConfig(arch), attack=attack_config, train=train, seed=current_seed()) if not problem else None
    clicked = t3.button("Train", type="primary", key=state.ATTACK_TRAIN, disabled=problem is not None, on_click=forget_made,
                        help="Trains on the poisoned training set; the same settings and seed train once and are reused.")
    estimate = training_estimate(shipped_cards() + built_cards(), dataset, arch, int(epochs), len(splits.train))
    st.caption(f"Seed {current_seed()} and device {current_device()} come from the sidebar. A model trained here is kept "
               "on this server, so anyone with the same settings gets it at once. "
               + (f"Estimated training time: {seconds_text(estimate[0])} (from {estimate[1]} model(s) trained with this data and "
                  "architecture; a busy server takes longer)." if estimate else
                  "No estimate yet for this data and architecture: the progress bar shows the time left once training starts."))
    if st.session_state.pop(state.ATTACK_TRAINING, None) and not clicked:
        st.info("Training stopped: nothing was saved. Train again to start over from the first epoch.", icon=":material/stop_circle:")
    if clicked and scenario is not None:
        bar, shown, started = st.progress(0.0, text="Poisoning the training set…"), [0.0], time.monotonic()
        stop = st.empty()
        stop.button("Stop training", key=state.ATTACK_STOP, help="Ends the training at once; nothing is saved.")
        st.session_state[state.ATTACK_TRAINING] = True  # a Stop click reruns the page, which ends the training generator

        def on_progress(item) -> None:
            now = time.monotonic()  # each progress update is a message to the browser: a few per second is enough
            if item.step is not None and now - shown[0] > 0.3:
                bar.progress(item.fraction, text=f"Training the {item.stage}: epoch {item.step.epoch}/{item.step.epochs}, "
                             f"batch {item.step.batch}/{item.step.batches}, loss {item.step.loss:.3f}"
                             f"{time_left(now - started, item.fraction)}")
                shown[0] = now

        try:
            with heavy_job("this training"):
                load_or_train(scenario, on_progress=on_progress, device=current_device(), run=job_steps)  # here, or on Ray (PURIFY_LAB_RAY)
        except UserInputError as error:
            st.session_state.pop(state.ATTACK_TRAINING, None)
            bar.empty(), stop.empty()
            st.error(untrusted.text(error))
        else:
            st.session_state.pop(state.ATTACK_TRAINING, None)
            st.session_state[state.ATTACK_MADE] = key_for(scenario)
            open_on_next_run(key_for(scenario))
with upload_tab:
    st.markdown(f"Weights for the data and architecture chosen above: a `.safetensors` file or a PyTorch state dict "
                f"(`.pt`, read with `weights_only=True`, so nothing in it can run), at most {MAX_UPLOAD_MB} MiB. ASR is "
                "measured with the attack the model's card names, or without a card the attack chosen above: the "
                "evaluator's view of what the model carries.")
    upload = st.file_uploader("Weights file", type=list(WEIGHT_SUFFIXES), key=state.ATTACK_FILE, on_change=forget_made)
    card_file = st.file_uploader("Its model card (optional)", type=["json"], key=state.ATTACK_CARD_FILE, on_change=forget_made,
                                 help="The .json card saved beside the weights (by train --out or an export): its attack, target "
                                      "and trigger are then the ones ASR is measured with.")
    card_scenario = upload_scenario(card_file, Scenario(data=data, model=ModelConfig(arch), seed=current_seed()), splits)
    if card_file is None and upload is not None and problem is None:
        st.warning(f"No card: ASR is measured with the attack chosen above ({attack_name}, target "
                   f"{untrusted.text(splits.classes[int(target)])}). If the weights carry another trigger, choose it above "
                   "or add the model's card, or ASR will read near 0.")
    blocked = card_scenario is None if card_file is not None else problem is not None
    if st.button("Check and open", key=state.ATTACK_UPLOAD, disabled=upload is None or blocked, on_click=forget_made):
        scenario = card_scenario or Scenario(data=data, model=ModelConfig(arch), attack=attack_config, seed=current_seed())
        try:
            with heavy_job("the check of these weights"), st.spinner("Checking the weights against the architecture and measuring ACC and ASR…"):
                saved = import_weights(upload.getvalue(), upload.name, scenario, max_mb=MAX_UPLOAD_MB)
        except UserInputError as error:
            st.error(untrusted.text(error))
        else:
            uploads = st.session_state.setdefault(state.UPLOADS, [])
            uploads.append(saved.card.name)
            st.session_state[state.ATTACK_MADE] = saved.card.name
            open_on_next_run(saved.card.name)
