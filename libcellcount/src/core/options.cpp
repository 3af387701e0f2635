#include "core/options.h"

#include <cmath>
#include <stdexcept>

#include "core/error.h"

namespace cellcount {

namespace Opt {
namespace {
OptionSpec make(std::string name, std::string type, nlohmann::json def) {
  OptionSpec o;
  o.name = std::move(name);
  o.type = std::move(type);
  o.default_value = std::move(def);
  return o;
}
}  // namespace
OptionSpec integer(std::string name, int64_t def) { return make(std::move(name), "int", def); }
OptionSpec number(std::string name, double def) { return make(std::move(name), "number", def); }
OptionSpec boolean(std::string name, bool def) { return make(std::move(name), "bool", def); }
OptionSpec string(std::string name, std::string def) { return make(std::move(name), "string", std::move(def)); }
OptionSpec path(std::string name, std::string def) { return make(std::move(name), "path", std::move(def)); }
OptionSpec choice(std::string name, std::string def, std::vector<std::string> choices) {
  auto o = make(std::move(name), "choice", std::move(def));
  o.choices = std::move(choices);
  return o;
}
OptionSpec int_list(std::string name, std::vector<int64_t> def) { return make(std::move(name), "int_list", def); }
OptionSpec number_list(std::string name, std::vector<double> def) { return make(std::move(name), "number_list", def); }
OptionSpec string_list(std::string name, std::vector<std::string> def) {
  return make(std::move(name), "string_list", def);
}
OptionSpec object(std::string name, nlohmann::json def) { return make(std::move(name), "object", std::move(def)); }
OptionSpec any(std::string name, nlohmann::json def) { return make(std::move(name), "json", std::move(def)); }
}  // namespace Opt

nlohmann::json option_defaults(const Options& options) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& o : options) j[o.name] = o.default_value;
  return j;
}

nlohmann::json option_metadata(const Options& options) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& o : options) {
    nlohmann::json j{{"name", o.name}, {"type", o.type}, {"default", o.default_value}, {"doc", o.doc},
                     {"advanced", o.advanced}, {"nullable", o.nullable}, {"required", o.required}};
    if (!o.min.is_null()) j["min"] = o.min;
    if (!o.max.is_null()) j["max"] = o.max;
    if (!o.choices.empty()) j["choices"] = o.choices;
    a.push_back(j);
  }
  return a;
}

const OptionSpec* find_option(const Options& options, const std::string& name) {
  for (const auto& o : options)
    if (o.name == name) return &o;
  return nullptr;
}

Options& set_default(Options& options, const std::string& name, nlohmann::json value) {
  for (auto& o : options)
    if (o.name == name) {
      o.default_value = std::move(value);
      return options;
    }
  throw std::logic_error("set_default: no option \"" + name + "\"");
}

Options& add_options(Options& options, const Options& more) {
  for (const auto& m : more) {
    bool replaced = false;
    for (auto& o : options)
      if (o.name == m.name) {
        o = m;
        replaced = true;
      }
    if (!replaced) options.push_back(m);
  }
  return options;
}

namespace {

std::string shown(const nlohmann::json& v) {
  std::string s = v.dump();
  return s.size() > 64 ? s.substr(0, 61) + "..." : s;
}

bool is_integral(const nlohmann::json& v) {
  if (v.is_number_integer()) return true;
  return false;
}

// A number inside [min, max] (bounds as declared; null = open).
void check_number(const std::string& where, const OptionSpec& o, const nlohmann::json& v, bool integer) {
  CC_CHECK(v.is_number(), CELLCOUNT_ERR_INVALID_ARGUMENT,
           where + " expected " + (integer ? "an integer" : "a number") + ", got " + shown(v));
  CC_CHECK(!integer || is_integral(v), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected an integer, got " + shown(v));
  const double x = v.get<double>();
  CC_CHECK(std::isfinite(x), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " must be finite");
  // An unsigned integer too large for a signed one is out of every declared range.
  const bool huge = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX);
  const bool low = !o.min.is_null() && (integer && !huge ? v.get<int64_t>() < o.min.get<int64_t>() : x < o.min.get<double>());
  const bool high = !o.max.is_null() && (huge || (integer ? v.get<int64_t>() > o.max.get<int64_t>() : x > o.max.get<double>()));
  if (low || high) {
    std::string range = o.min.is_null() ? "<= " + o.max.dump()
                        : o.max.is_null() ? ">= " + o.min.dump()
                                          : "in [" + o.min.dump() + ", " + o.max.dump() + "]";
    fail(CELLCOUNT_ERR_INVALID_ARGUMENT, where + " must be " + range + ", got " + shown(v));
  }
}

}  // namespace

void check_option_value(const std::string& context, const OptionSpec& o, const nlohmann::json& v) {
  const std::string where = context + ": field \"" + o.name + "\"";
  if (v.is_null()) {
    CC_CHECK(o.nullable || o.type == "json", CELLCOUNT_ERR_INVALID_ARGUMENT, where + " must not be null");
    return;
  }
  const std::string& t = o.type;
  if (t == "int" || t == "number") {
    check_number(where, o, v, t == "int");
  } else if (t == "bool") {
    CC_CHECK(v.is_boolean(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected true or false, got " + shown(v));
  } else if (t == "string" || t == "path") {
    CC_CHECK(v.is_string(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected a string, got " + shown(v));
  } else if (t == "choice") {
    CC_CHECK(v.is_string(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected a string, got " + shown(v));
    bool known = false;
    std::string list;
    for (const auto& c : o.choices) {
      known = known || c == v.get<std::string>();
      list += (list.empty() ? "" : ", ") + c;
    }
    CC_CHECK(known, CELLCOUNT_ERR_INVALID_ARGUMENT, where + " must be one of " + list + ", got " + shown(v));
  } else if (t == "int_list" || t == "number_list" || t == "string_list") {
    CC_CHECK(v.is_array(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected a list, got " + shown(v));
    CC_CHECK(v.size() <= 4096, CELLCOUNT_ERR_INVALID_ARGUMENT, where + " has more than 4096 entries");
    for (size_t i = 0; i < v.size(); ++i) {
      const std::string wi = where + " entry " + std::to_string(i);
      if (t == "string_list")
        CC_CHECK(v[i].is_string(), CELLCOUNT_ERR_INVALID_ARGUMENT, wi + " expected a string, got " + shown(v[i]));
      else
        check_number(wi, o, v[i], t == "int_list");
    }
  } else if (t == "object") {
    CC_CHECK(v.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, where + " expected a JSON object, got " + shown(v));
    if (o.default_value.is_object() && !o.default_value.empty())
      for (const auto& [k, x] : v.items()) {
        CC_CHECK(o.default_value.contains(k), CELLCOUNT_ERR_INVALID_ARGUMENT,
                 where + " has an unknown key \"" + k + "\" (known: " + [&] {
                   std::string s;
                   for (const auto& [dk, dv] : o.default_value.items()) s += (s.empty() ? "" : ", ") + dk;
                   return s;
                 }() + ")");
        const auto& d = o.default_value[k];
        const bool same = d.is_null() || (d.is_number() && x.is_number()) || d.type() == x.type();
        CC_CHECK(same, CELLCOUNT_ERR_INVALID_ARGUMENT,
                 where + " key \"" + k + "\" expected " + d.type_name() + ", got " + shown(x));
      }
  }
}

nlohmann::json resolve_options(const std::string& context, const Options& options, const nlohmann::json& request) {
  CC_CHECK(request.is_object(), CELLCOUNT_ERR_INVALID_ARGUMENT, context + ": expected a JSON object, got " + shown(request));
  nlohmann::json out = option_defaults(options);
  for (const auto& [k, v] : request.items()) {
    const OptionSpec* o = find_option(options, k);
    if (!o) {
      std::string known;
      for (const auto& x : options) known += (known.empty() ? "" : ", ") + x.name;
      fail(CELLCOUNT_ERR_INVALID_ARGUMENT,
           context + ": unknown field \"" + (k.size() > 64 ? k.substr(0, 61) + "..." : k) + "\" (known: " + known + ")");
    }
    check_option_value(context, *o, v);
    if (o->type == "object" && v.is_object() && out[k].is_object())
      out[k].update(v);
    else
      out[k] = v;
  }
  std::vector<std::string> missing;
  for (const auto& o : options)
    if (o.required && (out[o.name].is_null() || (out[o.name].is_string() && out[o.name].get<std::string>().empty())))
      missing.push_back("\"" + o.name + "\"");
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size(); ++i)
      list += (i == 0 ? "" : i + 1 == missing.size() ? " and " : ", ") + missing[i];
    fail(CELLCOUNT_ERR_INVALID_ARGUMENT, context + ": " + list + (missing.size() > 1 ? " are" : " is") + " required");
  }
  return out;
}

nlohmann::json resolve_setting(const std::string& context, const OptionSpec& option, const nlohmann::json& caller,
                               const nlohmann::json& model_value) {
  if (!caller.is_null()) {
    check_option_value(context, option, caller);
    return caller;
  }
  if (!model_value.is_null()) return model_value;
  return option.default_value;
}

namespace {
std::string json_kind(const nlohmann::json& j) {
  if (j.is_number()) return "a number";
  if (j.is_boolean()) return "a boolean";
  if (j.is_string()) return "a string";
  if (j.is_array()) return "a list";
  if (j.is_object()) return "an object";
  return "null";
}
}  // namespace

void check_field_types(const nlohmann::json& given, const nlohmann::json& reference, const std::string& where) {
  if (!reference.is_object()) return;
  CC_CHECK(given.is_object(), CELLCOUNT_ERR_MODEL_FORMAT,
           "model.json field \"" + where + "\": expected an object, got " + json_kind(given));
  for (const auto& [key, ref] : reference.items()) {
    if (!given.contains(key)) continue;
    const auto& v = given[key];
    const std::string path = where + "." + key;
    if (ref.is_object()) {
      check_field_types(v, ref, path);
      continue;
    }
    const bool same = ref.is_null() || (ref.is_number() ? v.is_number() : v.type() == ref.type());
    CC_CHECK(same, CELLCOUNT_ERR_MODEL_FORMAT,
             "model.json field \"" + path + "\": expected " + json_kind(ref) + ", got " + json_kind(v));
  }
}

}  // namespace cellcount
