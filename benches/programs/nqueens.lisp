(defun ok-p (row dist placed)
  (or (null placed)
      (and (not (= (car placed) (+ row dist)))
           (not (= (car placed) (- row dist)))
           (not (= (car placed) row))
           (ok-p row (+ dist 1) (cdr placed)))))
(defun queens (n placed)
  (if (= (length placed) n) 1
      (loop with total = 0 for r from 1 to n
            do (when (ok-p r 1 placed) (incf total (queens n (cons r placed))))
            finally (return total))))
(defun repeat (k) (if (= k 1) (queens 10 nil) (progn (queens 10 nil) (repeat (- k 1)))))
(format t "~a~%" (repeat 10))
