//! Datasets the README promises, made here: CIFAR-100's binary layout (coarse and fine
//! label per record; archc uses the fine one) and an ImageFolder with `train/` and
//! `val/` sub-directories (the two splits, classes sorted by name, PNG and JPEG images),
//! read through the library and trained and evaluated through the command line.

use archc::data::dataset::{self, Dataset, Source};
use archc::ir::Shape;
use std::path::Path;
use support::Scratch;
use support::runs::{archc, ok};

mod support;

/// The confusion matrix of `archc eval --json`: its rows are the true classes, so each
/// row's sum is how many test images carry that label, whatever the weights predict.
fn eval_row_sums(args: &[&str]) -> (Vec<String>, Vec<u64>) {
    let mut all = vec!["eval"];
    all.extend_from_slice(args);
    all.push("--json");
    let out = archc(&all);
    let text = ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    let names = report["per_class"].as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap().into()).collect();
    let sums = report["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum())
        .collect();
    (names, sums)
}

fn counts(labels: &[u32], classes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; classes];
    for &label in labels {
        counts[label as usize] += 1;
    }
    counts
}

// ---------------------------------------------------------------------------------
// CIFAR-100
// ---------------------------------------------------------------------------------

/// One record of CIFAR-100's binary layout: coarse label, fine label, 3072 pixels
/// (R plane, G plane, B plane). The pixels start from `seed`, so every image differs
/// and a record read at the wrong offset shows in the pixels too.
fn cifar100_record(coarse: u8, fine: u8, seed: usize) -> Vec<u8> {
    let mut record = vec![coarse, fine];
    record.extend((0..3072).map(|j| ((seed * 31 + j * 7) % 256) as u8));
    record
}

/// `count` records whose fine labels run over 0..100 (so a 100-way model is needed) and
/// whose coarse labels (0..20) never equal them.
fn cifar100_file(path: &Path, count: usize, offset: usize) -> Vec<(u8, u8)> {
    let mut bytes = Vec::new();
    let mut labels = Vec::new();
    for i in 0..count {
        let fine = ((i + offset) * 37 % 100) as u8;
        let coarse = if fine % 20 == (i % 20) as u8 { ((i + 1) % 20) as u8 } else { (i % 20) as u8 };
        assert_ne!(coarse, fine);
        bytes.extend(cifar100_record(coarse, fine, i + offset));
        labels.push((coarse, fine));
    }
    std::fs::write(path, bytes).unwrap();
    labels
}

const CIFAR_MODEL: &str = "network small(classes: int = 10) {
    input image(3, 32, 32)
    c:  conv(4, kernel: 3, stride: 4)
        global_avgpool
        flatten
    fc: linear(classes)
}
";

#[test]
fn cifar100_reads_the_fine_label_and_trains_with_100_classes() {
    let dir = Scratch::new("data", "cifar100");
    let train_labels = cifar100_file(&dir.join("train.bin"), 60, 0);
    let test_labels = cifar100_file(&dir.join("test.bin"), 25, 1000);

    let loaded = dataset::load(&Source::Cifar100, Some(&dir), Shape::Image { c: 3, h: 32, w: 32 }).unwrap();
    let test = loaded.test.as_ref().expect("CIFAR-100 has a test set");
    for (data, labels, offset) in [(&loaded.train, &train_labels, 0), (test, &test_labels, 1000)] {
        let fine: Vec<u32> = labels.iter().map(|&(_, f)| f as u32).collect();
        assert_eq!(data.labels, fine, "the fine label (the record's second byte) is the class");
        assert_eq!(data.classes.len(), 100);
        assert_eq!((data.channels, data.height, data.width), (3, 32, 32));
        for (i, image) in data.pixels.chunks_exact(3072).enumerate() {
            assert_eq!(image, &cifar100_record(0, 0, i + offset)[2..], "image {i}: pixels start after two labels");
        }
    }

    // A 10-way model is refused with the argument that fixes it.
    let model = dir.join("small.arch");
    std::fs::write(&model, CIFAR_MODEL).unwrap();
    let (model, data_dir) = (model.to_str().unwrap(), dir.to_str().unwrap());
    let out = archc(&["train", model, "--data", "cifar100", "--data-dir", data_dir, "--epochs", "1"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("has 100 classes") && err.contains("--set classes=100"), "{err}");

    let run = dir.join("run");
    let text = ok(&archc(&[
        "train",
        model,
        "--data",
        "cifar100",
        "--data-dir",
        data_dir,
        "--set",
        "classes=100",
        "--epochs",
        "1",
        "--batch",
        "16",
        "--out",
        run.to_str().unwrap(),
    ]));
    assert!(text.contains("(60 images, validation 25 images)"), "{text}");
    let weights = run.join("best.safetensors");
    let (names, sums) = eval_row_sums(&[
        model,
        "--weights",
        weights.to_str().unwrap(),
        "--data",
        "cifar100",
        "--data-dir",
        data_dir,
        "--set",
        "classes=100",
    ]);
    assert_eq!(names, (0..100).map(|i| i.to_string()).collect::<Vec<_>>());
    assert_eq!(sums, counts(&test.labels, 100), "eval counts the test images by their fine label");
}

// ---------------------------------------------------------------------------------
// ImageFolder with train/ and val/
// ---------------------------------------------------------------------------------

/// Class folders in the order they are made, with a red value that marks each class's
/// images. Sorted by name (byte order, as Rust's `Path` and Python's `sorted` sort, so
/// torchvision's ImageFolder numbers them alike), they are `10`, `9`, `Zebra`, `ant`:
/// digits before capitals before small letters, and `10` before `9`.
const CLASSES: [(&str, u8); 4] = [("ant", 20), ("Zebra", 80), ("10", 140), ("9", 200)];
const SORTED: [&str; 4] = ["10", "9", "Zebra", "ant"];
/// Blue marks the split: a validation image can never pass for a training one.
const TRAIN_BLUE: u8 = 40;
const VAL_BLUE: u8 = 220;

fn red_of(class: &str) -> u8 {
    CLASSES.iter().find(|(name, _)| *name == class).unwrap().1
}

/// A flat-coloured picture (JPEG keeps flat colours within a few levels), 12×10 so that
/// it is resized to the model's 8×8.
fn picture(red: u8, green: u8, blue: u8) -> image::RgbImage {
    image::RgbImage::from_fn(12, 10, |_, _| image::Rgb([red, green, blue]))
}

/// `Zebra` holds JPEGs (one with an upper-case `.JPEG`), the others PNGs, and every class
/// folder a text file that is not an image. Returns how many images each class got.
fn write_split(dir: &Path, blue: u8, per_class: impl Fn(usize) -> usize, classes: &[(&str, u8)]) -> Vec<usize> {
    let mut made = Vec::new();
    for (k, (class, red)) in classes.iter().enumerate() {
        let folder = dir.join(class);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("notes.txt"), "not an image").unwrap();
        for i in 0..per_class(k) {
            let image = picture(*red, 10 + 30 * i as u8, blue);
            let name = match (*class, i) {
                ("Zebra", 0) => format!("{i}.JPEG"),
                ("Zebra", _) => format!("{i}.jpg"),
                _ => format!("{i}.png"),
            };
            image.save(folder.join(name)).unwrap();
        }
        made.push(per_class(k));
    }
    made
}

/// Every image of `data` is flat, has its class's red and the split's blue (within
/// JPEG's error), and the images per class are as made.
fn assert_split(data: &Dataset, blue: u8, made: &[(&str, usize)]) {
    assert_eq!(data.classes, SORTED, "classes are the train folders, sorted by name");
    let plane = data.height * data.width;
    for (image, &label) in data.pixels.chunks_exact(data.image_size()).zip(&data.labels) {
        let class = &data.classes[label as usize];
        let near = |value: u8, want: u8| value.abs_diff(want) <= 3;
        assert!(
            image[..plane].iter().all(|&r| near(r, red_of(class))),
            "an image labelled `{class}` has another class's red"
        );
        assert!(image[2 * plane..].iter().all(|&b| near(b, blue)), "an image of `{class}` comes from the other split");
    }
    for (class, count) in made {
        let label = SORTED.iter().position(|c| c == class).unwrap() as u32;
        assert_eq!(data.labels.iter().filter(|&&l| l == label).count(), *count, "images of `{class}`");
    }
}

const FOLDER_MODEL: &str = "network small(classes: int = 4) {
    input image(3, 8, 8)
    c:  conv(4, kernel: 3)
        global_avgpool
        flatten
    fc: linear(classes)
}
";

#[test]
fn image_folder_with_train_and_val_uses_them_as_the_splits() {
    let root = Scratch::new("data", "folder-splits");
    let train_made = write_split(&root.join("train"), TRAIN_BLUE, |k| k + 2, &CLASSES);
    let val_made = write_split(&root.join("val"), VAL_BLUE, |k| 1 + k % 2, &CLASSES);
    let named =
        |made: &[usize]| -> Vec<(&str, usize)> { CLASSES.iter().map(|(c, _)| *c).zip(made.iter().copied()).collect() };

    let loaded = dataset::load(&Source::Folder(root.to_path_buf()), None, Shape::Image { c: 3, h: 8, w: 8 }).unwrap();
    let val = loaded.test.as_ref().expect("val/ is the test split");
    assert_eq!(loaded.train.len(), 14);
    assert_eq!(val.len(), 6);
    assert_split(&loaded.train, TRAIN_BLUE, &named(&train_made));
    assert_split(val, VAL_BLUE, &named(&val_made));

    // `test/` serves as well as `val/`.
    std::fs::rename(root.join("val"), root.join("test")).unwrap();
    let loaded = dataset::load(&Source::Folder(root.to_path_buf()), None, Shape::Image { c: 3, h: 8, w: 8 }).unwrap();
    assert_split(loaded.test.as_ref().expect("test/ is the test split"), VAL_BLUE, &named(&val_made));

    // The command line trains on train/, validates on test/, and records the class names.
    let model = root.join("small.arch");
    std::fs::write(&model, FOLDER_MODEL).unwrap();
    let run = root.join("run");
    let (model, data) = (model.to_str().unwrap(), root.to_str().unwrap());
    let text =
        ok(&archc(&["train", model, "--data", data, "--epochs", "1", "--batch", "4", "--out", run.to_str().unwrap()]));
    assert!(text.contains("(14 images, validation 6 images)"), "{text}");
    let weights = run.join("best.safetensors");
    let checkpoint = archc::lower::weights::StateDict::read(&weights).unwrap();
    assert_eq!(checkpoint.metadata["classes"], serde_json::to_string(&SORTED).unwrap());
    let (names, sums) = eval_row_sums(&[model, "--weights", weights.to_str().unwrap(), "--data", data]);
    assert_eq!(names, SORTED);
    assert_eq!(sums, counts(&loaded.test.as_ref().unwrap().labels, 4), "eval reads the test split");
}

#[test]
fn a_val_folder_is_labelled_by_the_train_folders_names() {
    let root = Scratch::new("data", "folder-partial-val");
    write_split(&root.join("train"), TRAIN_BLUE, |_| 2, &CLASSES);
    // Only two of the four classes have validation images: their labels are still the
    // training set's (`9` is 1 and `ant` 3, not 0 and 1).
    write_split(&root.join("val"), VAL_BLUE, |_| 1, &[("ant", 20), ("9", 200)]);
    let loaded = dataset::load(&Source::Folder(root.to_path_buf()), None, Shape::Image { c: 3, h: 8, w: 8 }).unwrap();
    let val = loaded.test.as_ref().unwrap();
    assert_eq!(val.labels, [1, 3]);
    assert_split(val, VAL_BLUE, &[("9", 1), ("ant", 1), ("Zebra", 0), ("10", 0)]);

    // A validation class that training never saw cannot be labelled: one line naming it.
    write_split(&root.join("val"), VAL_BLUE, |_| 1, &[("zebra", 90)]);
    let Err(error) = dataset::load(&Source::Folder(root.to_path_buf()), None, Shape::Image { c: 3, h: 8, w: 8 }) else {
        panic!("a class only in val/ is refused");
    };
    let message = error.to_string();
    assert!(message.contains("zebra") && !message.contains('\n'), "{message}");
}
