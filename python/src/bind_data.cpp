// needle.data's C++ side: datasets holding NDArrays, the image transforms, the DataLoader (with worker
// threads that prefetch batches while Python waits without the GIL) and the Penn Treebank helpers.
#include <nanobind/stl/shared_ptr.h>
#include <nanobind/stl/unordered_map.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings.h"
#include "needle/data/cifar10.h"
#include "needle/data/dataloader.h"
#include "needle/data/dataset.h"
#include "needle/data/mnist.h"
#include "needle/data/ptb.h"
#include "needle/data/transforms.h"

namespace needle::python {

namespace {

using data::Dataset;
using data::Transform;
using data::Transforms;

nb::tuple as_tuple(const std::vector<NDArray>& arrays) {
  nb::list out;
  for (const NDArray& a : arrays) out.append(nb::cast(a));
  return nb::tuple(out);
}

// One epoch of a DataLoader as a Python iterator.
struct EpochIterator {
  data::Epoch epoch;
};

void bind_transforms(nb::module_& m) {
  nb::class_<Transform>(m, "Transform", "A C++ image transform on one (H, W, C) image.")
      .def(
          "__call__", [](const Transform& t, const NDArray& image) { return t(image); }, nb::arg("image"),
          "The transformed image (a new array).");
  nb::class_<data::RandomFlipHorizontal, Transform>(m, "RandomFlipHorizontal")
      .def(
          "__init__", [](data::RandomFlipHorizontal* self, double p) { new (self) data::RandomFlipHorizontal(p); },
          nb::arg("p") = 0.5,
          "Mirrors the image along W with probability p (Needle's C++ generator; needle.data's transform draws from "
          "NumPy instead).");
  nb::class_<data::RandomCrop, Transform>(m, "RandomCrop")
      .def(
          "__init__", [](data::RandomCrop* self, std::int64_t padding) { new (self) data::RandomCrop(padding); },
          nb::arg("padding") = 3, "Zero-pads by `padding` and crops a window shifted by up to +-padding.")
      .def("crop", &data::RandomCrop::crop, nb::arg("image"), nb::arg("shift_x"), nb::arg("shift_y"),
           "The crop for given shifts (dx along H, dy along W).");
}

void bind_datasets(nb::module_& m) {
  nb::class_<Dataset>(m, "Dataset", "A C++ dataset: samples are tuples of NDArrays.")
      .def("__len__", &Dataset::size)
      .def(
          "__getitem__", [](const Dataset& d, std::int64_t index) { return as_tuple(d.get(index)); }, nb::arg("index"),
          nb::sig("def __getitem__(self, index: int) -> tuple[NDArray, ...]"),
          "Sample `index` (negative counts from the end).")
      .def("apply_transforms", &Dataset::apply_transforms, nb::arg("image"),
           "The dataset's transforms applied in order to one (H, W, C) image.")
      .def_prop_ro("transforms", &Dataset::transforms);
  nb::class_<data::NDArrayDataset, Dataset>(m, "NDArrayDataset")
      .def(nb::init<std::vector<NDArray>>(), nb::arg("arrays"), "Sample i is the i-th row of every array.");
  nb::class_<data::MNISTDataset, Dataset>(m, "MNISTDataset")
      .def(nb::init<const std::string&, const std::string&, Transforms>(), nb::arg("image_filename"),
           nb::arg("label_filename"), nb::arg("transforms") = Transforms{}, nb::call_guard<nb::gil_scoped_release>(),
           "Gzipped (or plain) IDX images and labels: images (28, 28, 1) float32 in [0, 1], labels int64.")
      .def_prop_ro("images", &data::MNISTDataset::images, "(N, rows, cols, 1) float32, untransformed.")
      .def_prop_ro("labels", &data::MNISTDataset::labels, "(N,) int64.");
  nb::class_<data::CIFAR10Dataset, Dataset>(m, "CIFAR10Dataset")
      .def(nb::init<const std::string&, bool, Transforms>(), nb::arg("base_folder"), nb::arg("train"),
           nb::arg("transforms") = Transforms{}, nb::call_guard<nb::gil_scoped_release>(),
           "The cifar-10-batches-py pickles (read without running code): images (3, 32, 32) float32 in [0, 1].")
      .def_prop_ro("images", &data::CIFAR10Dataset::images, "(N, 3, 32, 32) float32, untransformed.")
      .def_prop_ro("labels", &data::CIFAR10Dataset::labels, "(N,) int64.");
}

void bind_loader(nb::module_& m) {
  nb::class_<EpochIterator>(m, "DataLoaderEpoch", "One pass over a DataLoader's data.")
      .def(
          "__iter__", [](nb::handle self) { return self; }, nb::sig("def __iter__(self) -> DataLoaderEpoch"))
      .def(
          "__next__",
          [](EpochIterator& it) {
            std::optional<data::Batch> batch;
            {
              // Worker threads build the batches; Python runs on while this thread waits.
              nb::gil_scoped_release release;
              batch = it.epoch.next();
            }
            if (!batch) throw nb::stop_iteration();
            return as_tuple(*batch);
          },
          nb::sig("def __next__(self) -> tuple[NDArray, ...]"))
      .def_prop_ro(
          "order", [](const EpochIterator& it) { return it.epoch.order(); },
          "The sample indices of this epoch, in batch order.");
  nb::class_<data::DataLoader>(m, "DataLoader",
                               "Batches of a C++ dataset, built on worker threads when num_workers > 0.")
      .def(nb::init<std::shared_ptr<const Dataset>, std::int64_t, bool, bool, std::int64_t,
                    std::optional<std::uint64_t>>(),
           nb::arg("dataset"), nb::arg("batch_size") = 1, nb::arg("shuffle") = false, nb::arg("drop_last") = false,
           nb::arg("num_workers") = 0, nb::arg("seed") = nb::none())
      .def(
          "__iter__", [](data::DataLoader& loader) { return EpochIterator{loader.epoch()}; }, nb::keep_alive<0, 1>(),
          "Starts the next epoch (a new permutation when shuffling).")
      .def(
          "epoch",
          [](data::DataLoader& loader, std::vector<std::int64_t> order) {
            return EpochIterator{loader.epoch(std::move(order))};
          },
          nb::arg("order"), nb::keep_alive<0, 1>(),
          "An epoch over the samples `order` names, in that order (e.g. a permutation drawn by NumPy), built on "
          "the worker threads like any other.")
      .def("__len__", &data::DataLoader::size, "Batches per epoch.")
      .def_prop_ro("batch_size", &data::DataLoader::batch_size)
      .def_prop_ro("num_workers", &data::DataLoader::num_workers)
      .def_prop_ro("dataset", &data::DataLoader::dataset);
}

void bind_ptb(nb::module_& m) {
  nb::class_<data::Dictionary>(m, "Dictionary", "Words and their ids (Penn Treebank).")
      .def(nb::init<>())
      .def("add_word", &data::Dictionary::add_word, nb::arg("word"), "The id of `word`, added when new.")
      .def("index", &data::Dictionary::index, nb::arg("word"), "The id of a known word (ValueError otherwise).")
      .def("word", &data::Dictionary::word, nb::arg("id"), "The word of an id.")
      .def("__len__", &data::Dictionary::size)
      .def_prop_ro("word2idx", &data::Dictionary::word2idx, "A copy of the word -> id map.")
      .def_prop_ro("idx2word", &data::Dictionary::idx2word, "A copy of the id -> word list.");
  nb::class_<data::Corpus>(m, "Corpus", "The train/valid/test splits of a Penn Treebank folder as word ids.")
      .def(nb::init<const std::string&, std::optional<std::int64_t>>(), nb::arg("base_dir"),
           nb::arg("max_lines") = nb::none(), nb::call_guard<nb::gil_scoped_release>())
      .def("tokenize", &data::Corpus::tokenize, nb::arg("path"), nb::arg("max_lines") = nb::none(),
           "Adds the words of `path` (each line then <eos>) to the dictionary and returns their ids.")
      .def_prop_ro(
          "dictionary", [](data::Corpus& c) -> data::Dictionary& { return c.dictionary; },
          nb::rv_policy::reference_internal)
      .def_ro("train", &data::Corpus::train)
      .def_ro("valid", &data::Corpus::valid)
      .def_ro("test", &data::Corpus::test);
  m.def(
      "batchify",
      [](const std::vector<std::int64_t>& ids, std::int64_t batch_size, const DTypeLike& dtype,
         const std::optional<Device>& device) {
        return data::batchify(ids, batch_size, to_dtype(dtype), device_or_default(device));
      },
      nb::arg("data"), nb::arg("batch_size"), nb::arg("dtype") = "int64", nb::arg("device") = nb::none(),
      "Needle's batchify: ids laid out as (len(data) // batch_size, batch_size), column j the j-th run.");
  m.def("get_batch", &data::get_batch, nb::arg("batches"), nb::arg("i"), nb::arg("bptt"),
        "Needle's get_batch: (rows [i, i + L), rows [i + 1, i + 1 + L) flattened), L = min(bptt, nbatch - 1 - i).");
}

}  // namespace

void bind_data(nb::module_& m) {
  bind_transforms(m);
  bind_datasets(m);
  bind_loader(m);
  bind_ptb(m);
}

}  // namespace needle::python
