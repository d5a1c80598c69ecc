"""Figures of the auxiliary tasks a model was trained with (docs/auxiliary-tasks.md): for a few
faces of the test part, the masked input, the inpainted face and the true face; the target and
the predicted optical flow. Faces of different subjects with a flow target come first."""
from __future__ import annotations

from pathlib import Path

from components.evaluate.figures import flow_figure, inpainting_figure, to_uint8

# Faces looked at to find `samples` of different subjects (records are written subject by
# subject, so a part's first records are a few people's).
_SCAN = 2000


def figure_names(fold: int, tasks) -> dict[str, str]:
    return {task: f"{task}_fold{fold}.png" for task in tasks}


def auxiliary_figures(model, files, out_dir: Path, fold: int, samples: int,
                      title: str) -> list[str]:
    """Write the figures of `model`'s auxiliary tasks for part `fold`; their file names."""
    import tensorflow as tf

    from components.train.input_pipeline import transform_auxiliary

    config, tasks = model.config, model.config.auxiliary
    if not tasks or samples <= 0:
        return []
    examples = _sample_records(files, config.num_aus, samples)
    if not examples:
        return []
    prepare = {}
    for task in tasks:   # each face's crop as evaluated, its mask drawn with a seed of its own
        faces = [transform_auxiliary(e, config.crop_size, tf.constant([fold, i]), (task,),
                                     config.aus, config.inpainting_patch, training=False)
                 for i, e in enumerate(examples)]
        prepare[task] = (tf.stack([image for image, _ in faces]),
                         {key: tf.stack([t[key] for _, t in faces]) for key in faces[0][1]})
    captions = [f"{e['subject'].numpy().decode()} {e['task'].numpy().decode()} "
                f"#{int(e['frame'])}" for e in examples]
    names = figure_names(fold, tasks)
    if "inpainting" in tasks:
        masked, targets = prepare["inpainting"]
        mask = targets["inpainting_mask"].numpy()
        face = targets["inpainting_target"].numpy()
        out = model({"images": face, "auxiliary_images": masked}, training=False)
        inpainted = mask * out["inpainted"].numpy() + (1 - mask) * face
        inpainting_figure(out_dir / names["inpainting"], to_uint8(masked.numpy()),
                          to_uint8(inpainted), to_uint8(face), captions=captions,
                          title=f"{title}: RoI inpainting")
    if "flow" in tasks:
        faces, targets = prepare["flow"]
        out = model({"images": faces, "auxiliary_images": faces}, training=False)
        flow_figure(out_dir / names["flow"], to_uint8(faces.numpy()), targets["flow"].numpy(),
                    out["flow"].numpy(), captions=captions,
                    title=f"{title}: optical flow to frame t + k")
    return list(names.values())


def _sample_records(files, num_aus: int, samples: int) -> list[dict]:
    """Parsed records (with flow) of up to `samples` subjects, those with a flow target first."""
    import tensorflow as tf

    from components.train.input_pipeline import record_dataset
    from schemas.example import parse_examples

    chosen, subjects, spare = [], set(), []
    scanned = tf.data.Dataset.from_tensor_slices([str(f) for f in files]).flat_map(record_dataset)
    for serialized in scanned.take(_SCAN):
        example = parse_examples(serialized, num_aus, with_flow=True)
        subject = example["subject"].numpy()
        if bool(example["has_flow"]) and subject not in subjects:
            subjects.add(subject)
            chosen.append(example)
            if len(chosen) == samples:
                return chosen
        elif len(spare) < samples:
            spare.append(example)
    return chosen + spare[:samples - len(chosen)]
