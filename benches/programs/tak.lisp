(defun tak (x y z) (if (not (< y x)) z (tak (tak (- x 1) y z) (tak (- y 1) z x) (tak (- z 1) x y))))
(defun repeat (k acc) (if (= k 0) acc (repeat (- k 1) (+ acc (tak 22 16 8)))))
(format t "~a~%" (repeat 5 0))
